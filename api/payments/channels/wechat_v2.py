"""WeChat Pay API v2 (XML, MD5/HMAC-SHA256) through wechatpy's `WeChatPay`, JSAPI trades.

wechatpy does the transport and request signing; everything it gets wrong or skips we do
ourselves (PROTOCOLS.md §0, §1.11):
- every synchronous response is signature-checked here (wechatpy never checks, §0.3);
- notifications are verified by `wechat_v2_protocol.verify`, which accepts MD5 and
  HMAC-SHA256 (wechatpy: MD5 only, §0.2) and parses XML with DTDs/entities refused;
- `wx.requestPayment` parameters are built here with a `secrets` nonce (§1.4, §1.11);
- `client_ip`, `out_trade_no` and `time_expire` are always passed, so wechatpy never does its
  DNS lookup or invents a colliding order number (§1.3);
- refund `req_info` is decrypted with strict PKCS7(128) (§1.8).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import requests
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay import WeChatPay

from api.clock import BEIJING
from api.config import SANDBOX_KEYS, Config
from api.payments.channels import wechat_v2_protocol as proto
from api.payments.channels.base import (
    AlreadyPaid,
    BillRow,
    ChannelError,
    ChannelName,
    ChannelRefund,
    ChannelTrade,
    NotificationRejected,
    PrepayRequest,
    PrepayResult,
    Reply,
    TradeState,
    VerifiedNotification,
)
from api.payments.channels.bills import MalformedBill, parse_wechat_bill
from api.payments.channels.timefmt import COMPACT, DASHED, parse_beijing

XML = "text/xml; charset=utf-8"
TIMEOUT_SECONDS = 10

# trade_state → TradeState (PROTOCOLS.md §1.6). PAYERROR is final for the trade; ACCEPT and
# USERPAYING are in flight.
TRADE_STATES = {
    "SUCCESS": TradeState.PAID,
    "REFUND": TradeState.REFUNDED,
    "NOTPAY": TradeState.OPEN,
    "USERPAYING": TradeState.OPEN,
    "ACCEPT": TradeState.OPEN,
    "CLOSED": TradeState.CLOSED,
    "REVOKED": TradeState.CLOSED,
    "PAYERROR": TradeState.CLOSED,
}
REFUND_STATES = {"SUCCESS": "succeeded", "REFUNDCLOSE": "closed", "CHANGE": "failed"}
# refundquery also reports refunds still under way (§1.7); a notification never does.
QUERY_REFUND_STATES = {**REFUND_STATES, "PROCESSING": "processing"}
RETRYABLE_ERRORS = {"SYSTEMERROR", "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED", "NOTENOUGH"}


class WeChatV2Channel:
    """`PaymentChannel` for WeChat Pay API v2 (小程序支付 JSAPI)."""

    name = ChannelName.WECHAT

    def __init__(self, settings: Config) -> None:
        self._settings = settings
        self._client: WeChatPay | None = None
        self._lock = threading.Lock()

    # Client ---------------------------------------------------------------------------------

    def cert_paths(self) -> tuple[str, str] | None:
        """Merchant API client certificate for `secapi/pay/refund` (mutual TLS, §1.7).

        WECHAT_MCH_CERT_FILE / WECHAT_MCH_KEY_FILE when set, else the sandbox pair in
        sandbox/keys/ when present; None when neither exists.
        """
        s = self._settings
        cert = s.WECHAT_MCH_CERT_FILE or str(SANDBOX_KEYS / "apiclient_cert.pem")
        key = s.WECHAT_MCH_KEY_FILE or str(SANDBOX_KEYS / "apiclient_key.pem")
        if Path(cert).is_file() and Path(key).is_file():
            return cert, key
        if s.WECHAT_MCH_CERT_FILE or s.WECHAT_MCH_KEY_FILE:
            raise ChannelError("merchant certificate file missing", code="config")
        return None

    @property
    def client(self) -> WeChatPay:
        """The wechatpy client, built on first use (never at import) and redirected to our base.

        `API_BASE_URL` is a class attribute in wechatpy; setting it on the instance redirects
        every v2 call (PROTOCOLS.md §1.11). It must end with a slash.
        """
        with self._lock:
            if self._client is None:
                s = self._settings
                certs = self.cert_paths()
                client = WeChatPay(
                    appid=s.WECHAT_APPID,
                    api_key=s.WECHAT_API_KEY,
                    mch_id=s.WECHAT_MCH_ID,
                    mch_cert=certs[0] if certs else None,
                    mch_key=certs[1] if certs else None,
                    timeout=TIMEOUT_SECONDS,
                )
                base = s.WECHAT_PAY_API_BASE
                client.API_BASE_URL = base if base.endswith("/") else base + "/"
                self._client = client
            return self._client

    # Calls ----------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one wechatpy call; translate its failures; verify the response signature."""
        try:
            result = fn(*args, **kwargs)
        except WeChatPayException as exc:
            raise self._translate(what, exc) from exc
        except requests.RequestException as exc:
            raise ChannelError(
                f"{what}: {type(exc).__name__}", code="network", retryable=True
            ) from exc
        if isinstance(result, dict):
            self._check_response(what, result)
        return result

    def _check_response(self, what: str, data: Mapping[str, Any]) -> None:
        """Signature, appid and mch_id of a SUCCESS response (wechatpy checks none, §0.3)."""
        if not proto.verify(data, self._settings.WECHAT_API_KEY):
            raise ChannelError(f"{what}: response signature invalid", code="bad_signature")
        if data.get("appid") not in (None, self._settings.WECHAT_APPID):
            raise ChannelError(f"{what}: response for another appid", code="wrong_app_id")
        if data.get("mch_id") not in (None, self._settings.WECHAT_MCH_ID):
            raise ChannelError(f"{what}: response for another mch_id", code="wrong_merchant")

    def _translate(self, what: str, exc: WeChatPayException) -> ChannelError:
        response = exc.response
        if exc.return_code is None:  # HTTP error status, raised by raise_for_status()
            status = response.status_code if response is not None else 0
            retryable = status >= 500 or status in (0, 429)
            return ChannelError(
                f"{what}: HTTP {status}", code=f"http_{status}", retryable=retryable
            )
        if exc.return_code == "SUCCESS" and response is not None:
            # A business failure (result_code FAIL) is signed like any answer: a forged
            # ORDERPAID or ORDERNOTEXIST must not steer the core.
            try:
                fields = proto.parse_xml(response.content)
            except proto.MalformedXML:
                return ChannelError(f"{what}: unreadable error response", code="malformed")
            self._check_response(what, fields)
        code = exc.errcode or exc.return_msg or "FAIL"
        detail = exc.errmsg or exc.return_msg or ""
        return ChannelError(f"{what}: {detail}", code=str(code), retryable=code in RETRYABLE_ERRORS)

    # Prepay ---------------------------------------------------------------------------------

    def prepay(self, req: PrepayRequest) -> PrepayResult:
        """Unified order (`pay/unifiedorder`, trade_type JSAPI) → `wx.requestPayment` params."""
        if not req.payer_id:
            raise ChannelError("JSAPI needs the payer's openid", code="PAYER_REQUIRED")
        data = self._call(
            "unifiedorder",
            self.client.order.create,
            trade_type="JSAPI",
            body=req.description[:127],
            total_fee=req.amount_fen,
            notify_url=req.notify_url,
            client_ip=req.client_ip,
            user_id=req.payer_id,
            out_trade_no=req.out_trade_no,
            time_start=datetime.now(BEIJING),
            time_expire=req.expires_at.astimezone(BEIJING),
            nonce_str=proto.new_nonce(),
        )
        prepay_id = data.get("prepay_id")
        if not prepay_id:
            raise ChannelError("unifiedorder: no prepay_id", code="malformed")
        return PrepayResult(pay_params=self.pay_params(prepay_id), channel_ref=prepay_id)

    def pay_params(self, prepay_id: str, *, timestamp: int | None = None) -> dict[str, str]:
        """`wx.requestPayment` parameters with the MD5 paySign (PROTOCOLS.md §1.4).

        paySign covers appId, nonceStr, package, signType, timeStamp; the mini-program gets
        exactly the last four plus paySign (its appId is implicit).
        """
        params = {
            "timeStamp": str(int(time.time()) if timestamp is None else timestamp),
            "nonceStr": proto.new_nonce(),
            "package": f"prepay_id={prepay_id}",
            "signType": proto.MD5,
        }
        signed = {"appId": self._settings.WECHAT_APPID, **params}
        params["paySign"] = proto.sign(signed, self._settings.WECHAT_API_KEY, proto.MD5)
        return params

    # Query / close ----------------------------------------------------------------------------

    def query(self, out_trade_no: str) -> ChannelTrade:
        """`pay/orderquery` → what WeChat says (ORDERNOTEXIST → NOT_FOUND)."""
        try:
            data = self._call("orderquery", self.client.order.query, out_trade_no=out_trade_no)
        except ChannelError as exc:
            if exc.code == "ORDERNOTEXIST":
                return ChannelTrade.not_found(out_trade_no)
            raise
        state = TRADE_STATES.get(data.get("trade_state") or "")
        if state is None:
            raise ChannelError(f"unknown trade_state {data.get('trade_state')!r}", code="malformed")
        if data.get("out_trade_no") not in (None, out_trade_no):
            raise ChannelError("orderquery answered another order", code="malformed")
        return self._trade(data, out_trade_no, state)

    def _trade(self, data: Mapping[str, Any], out_trade_no: str, state: TradeState) -> ChannelTrade:
        try:
            amount = _int_fen(data.get("total_fee"))
            paid_at = parse_beijing(data.get("time_end"), COMPACT)
        except ValueError as exc:
            raise ChannelError(f"bad total_fee/time_end: {exc}", code="malformed") from exc
        return ChannelTrade(
            out_trade_no=out_trade_no,
            state=state,
            amount_fen=amount,
            transaction_id=data.get("transaction_id") or None,
            paid_at=paid_at,
            app_id=data.get("appid"),
            merchant_id=data.get("mch_id"),
            payer_id=data.get("openid") or None,
        )

    def close(self, out_trade_no: str) -> None:
        """`pay/closeorder`: ORDERPAID → AlreadyPaid; ORDERCLOSED / ORDERNOTEXIST → done."""
        try:
            self._call("closeorder", self.client.order.close, out_trade_no)
        except ChannelError as exc:
            if exc.code == "ORDERPAID":
                raise AlreadyPaid(f"{out_trade_no} is paid") from exc
            if exc.code in ("ORDERCLOSED", "ORDERNOTEXIST"):
                return
            raise

    # Refund ---------------------------------------------------------------------------------

    def refund(
        self,
        *,
        out_trade_no: str,
        out_refund_no: str,
        total_fen: int,
        refund_fen: int,
        reason: str,
        notify_url: str,
    ) -> ChannelRefund:
        """`secapi/pay/refund` (client certificate). The answer means "accepted": the outcome
        arrives as a refund notification (§1.7, §1.8). Resending the same out_refund_no
        refunds once."""
        if self.cert_paths() is None and self.client.API_BASE_URL.startswith("https://"):
            raise ChannelError("refunds need the merchant API certificate", code="config")
        data = self._call(
            "refund",
            self.client.refund.apply,
            total_fee=total_fen,
            refund_fee=refund_fen,
            out_refund_no=out_refund_no,
            out_trade_no=out_trade_no,
            refund_desc=reason[:80] or None,
            notify_url=notify_url,
        )
        try:
            amount = _int_fen(data.get("refund_fee"))
        except ValueError as exc:
            raise ChannelError("refund: bad refund_fee", code="malformed") from exc
        return ChannelRefund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            refund_id=data.get("refund_id") or None,
            amount_fen=refund_fen if amount is None else amount,
            state="processing",
            succeeded_at=None,
        )

    def query_refund(self, *, out_trade_no: str, out_refund_no: str) -> ChannelRefund | None:
        """`pay/refundquery` by out_refund_no (§1.7) → this refund's status.

        The answer lists refunds as `*_$n` fields (refund_count of them); the one whose
        `out_refund_no_$n` is ours is read. Its signature, appid and mch_id are checked like
        every response (`_call`, §0.3). REFUNDNOTEXIST → None.
        """
        try:
            data = self._call("refundquery", self.client.refund.query, out_refund_no=out_refund_no)
        except ChannelError as exc:
            if exc.code == "REFUNDNOTEXIST":
                return None
            raise
        if data.get("out_trade_no") != out_trade_no:
            raise ChannelError("refundquery answered another order", code="malformed")
        try:
            count = _int_fen(data.get("refund_count")) or 0
        except ValueError as exc:
            raise ChannelError("refundquery: bad refund_count", code="malformed") from exc
        for n in range(count):
            if data.get(f"out_refund_no_{n}") == out_refund_no:
                return self._queried_refund(data, n, out_trade_no, out_refund_no)
        return None

    def _queried_refund(
        self, data: Mapping[str, Any], n: int, out_trade_no: str, out_refund_no: str
    ) -> ChannelRefund:
        raw_status = data.get(f"refund_status_{n}") or ""
        state = QUERY_REFUND_STATES.get(raw_status)
        if state is None:
            raise ChannelError(f"unknown refund_status {raw_status!r}", code="malformed")
        try:
            amount = _int_fen(data.get(f"refund_fee_{n}"))
            succeeded_at = parse_beijing(data.get(f"refund_success_time_{n}"), DASHED)
        except ValueError as exc:
            raise ChannelError(f"refundquery: {exc}", code="malformed") from exc
        if amount is None:
            raise ChannelError("refundquery: no refund_fee", code="malformed")
        return ChannelRefund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            refund_id=data.get(f"refund_id_{n}") or None,
            amount_fen=amount,
            state=state,  # type: ignore[arg-type]
            succeeded_at=succeeded_at if state == "succeeded" else None,
        )

    # Notifications --------------------------------------------------------------------------

    def parse_notification(
        self,
        headers: Mapping[str, str],
        body: bytes,
        path: str,
        *,
        received_at: datetime | None = None,
    ) -> VerifiedNotification:
        """A payment notification (signed) or a refund notification (encrypted `req_info`).

        The two are told apart by content, not by path: only refund notifications carry
        `req_info`, and they carry no sign (the encryption authenticates them, §1.8).
        """
        try:
            fields = proto.parse_xml(body)
        except proto.MalformedXML as exc:
            raise NotificationRejected("malformed", str(exc)) from exc
        if fields.get("return_code") != "SUCCESS":
            raise NotificationRejected("not_success", fields.get("return_msg") or "")
        if "req_info" in fields:
            return self._refund_notification(fields)
        return self._payment_notification(fields)

    def _check_ids(self, fields: Mapping[str, str]) -> None:
        if fields.get("appid") != self._settings.WECHAT_APPID:
            raise NotificationRejected("wrong_app_id", fields.get("appid") or "")
        if fields.get("mch_id") != self._settings.WECHAT_MCH_ID:
            raise NotificationRejected("wrong_merchant", fields.get("mch_id") or "")

    def _payment_notification(self, fields: Mapping[str, str]) -> VerifiedNotification:
        if not proto.verify(fields, self._settings.WECHAT_API_KEY):
            raise NotificationRejected("bad_signature")
        self._check_ids(fields)
        out_trade_no = fields.get("out_trade_no")
        if not out_trade_no:
            raise NotificationRejected("malformed", "no out_trade_no")
        paid = fields.get("result_code") == "SUCCESS"
        try:
            amount = _int_fen(fields.get("total_fee"))
            paid_at = parse_beijing(fields.get("time_end"), COMPACT)
        except ValueError as exc:
            raise NotificationRejected("malformed", str(exc)) from exc
        if paid and (amount is None or not fields.get("transaction_id")):
            raise NotificationRejected("malformed", "paid without total_fee/transaction_id")
        trade = ChannelTrade(
            out_trade_no=out_trade_no,
            state=TradeState.PAID if paid else TradeState.OPEN,
            amount_fen=amount,
            transaction_id=fields.get("transaction_id") or None,
            paid_at=paid_at,
            app_id=fields["appid"],
            merchant_id=fields["mch_id"],
            payer_id=fields.get("openid") or None,
        )
        # result_code FAIL is a genuine "payment failed" notice: nothing final to apply.
        return VerifiedNotification(
            kind="payment" if paid else "pending", trade=trade, refund=None, event_id=None
        )

    def _refund_notification(self, fields: Mapping[str, str]) -> VerifiedNotification:
        self._check_ids(fields)
        try:
            plain = proto.decrypt_req_info(fields["req_info"], self._settings.WECHAT_API_KEY)
            info = proto.parse_refund_plaintext(plain)
        except (ValueError, UnicodeDecodeError) as exc:
            raise NotificationRejected("decrypt_failed", str(exc)) from exc
        state = REFUND_STATES.get(info.get("refund_status") or "")
        out_trade_no, out_refund_no = info.get("out_trade_no"), info.get("out_refund_no")
        if state is None or not out_trade_no or not out_refund_no:
            raise NotificationRejected("malformed", "refund without status/numbers")
        try:
            amount = _int_fen(info.get("refund_fee"))
            succeeded_at = parse_beijing(info.get("success_time"), DASHED)
        except ValueError as exc:
            raise NotificationRejected("malformed", str(exc)) from exc
        if amount is None:
            raise NotificationRejected("malformed", "refund without refund_fee")
        refund = ChannelRefund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            refund_id=info.get("refund_id") or None,
            amount_fen=amount,
            state=state,  # type: ignore[arg-type]
            succeeded_at=succeeded_at if state == "succeeded" else None,
        )
        return VerifiedNotification(kind="refund", trade=None, refund=refund, event_id=None)

    def success_reply(self) -> Reply:
        return Reply(200, proto.SUCCESS_XML, XML)

    def failure_reply(self, reason: str) -> Reply:
        return Reply(200, proto.failure_xml(reason), XML)

    # Bill -----------------------------------------------------------------------------------

    def fetch_bill(self, bill_date: date) -> bytes | None:
        """`pay/downloadbill` (bill_type ALL) → the bill file as sent; "No Bill Exist" → None."""
        try:
            text = self._call("downloadbill", self.client.tools.download_bill, bill_date)
        except ChannelError as exc:
            if exc.code in ("No Bill Exist", "20002"):
                return None
            raise
        if not isinstance(text, str):
            raise ChannelError("downloadbill answered XML instead of a bill", code="malformed")
        return text.encode("utf-8")

    def download_bill(self, bill_date: date) -> list[BillRow]:
        """`pay/downloadbill` (bill_type ALL) → rows; "No Bill Exist" → [] (§1.9)."""
        data = self.fetch_bill(bill_date)
        if data is None:
            return []
        try:
            return parse_wechat_bill(data.decode("utf-8"))
        except MalformedBill as exc:
            raise ChannelError(f"downloadbill: {exc}", code="malformed") from exc


def _int_fen(value: str | None) -> int | None:
    """A WeChat fen amount: ASCII digits only (int() would also take "+1", " 1", "١")."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"not an amount in fen: {value!r}")
    return int(value)
