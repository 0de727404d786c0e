"""Alipay open platform (`gateway.do`, RSA2) through python-alipay-sdk 3.4.0.

Scenes (PrepayRequest.scene): "miniprogram" (`alipay.trade.create` with the buyer's Alipay
user id, for `my.tradePay` inside Alipay), "wap" (`alipay.trade.wap.pay` URL for a phone
browser) and "qr" (`alipay.trade.precreate` QR code for agents and posters). A WeChat
mini-program can use only WeChat Pay (PROTOCOLS.md §5.10).

SDK defects handled here (PROTOCOLS.md §5.9):
- `api_alipay_trade_create` looks for the wrong response key; we call
  `server_api("alipay.trade.create", …)` instead;
- business failures (code 40004 …) come back as a normal dict: every answer is checked for
  `code == "10000"`;
- there is no bill helper: `server_api("alipay.data.dataservice.bill.downloadurl.query", …)`;
- `verify()` mutates its argument, needs `sign` popped first and raises on an unknown
  sign_type: we hand it a copy and turn the exception into a rejection;
- amounts are yuan strings from `money.fen_to_yuan_str`, never floats (§5.2);
- the SDK stamps requests with the machine's naive local time (`datetime.now()`, §5.2), while
  the gateway reads `timestamp` as Beijing time: `BeijingAliPay` stamps Beijing time itself, so
  no process depends on its TZ. Our own `time_expire` is computed in Asia/Shanghai explicitly.
"""

from __future__ import annotations

import threading
import urllib.error
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import requests
from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError
from alipay.utils import AliPayConfig

from api.clock import BEIJING
from api.config import Config
from api.payments.channels.base import (
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
    settle_refused_close,
)
from api.payments.channels.bills import MalformedBill, parse_alipay_bill_zip
from api.payments.channels.timefmt import DASHED, parse_beijing, to_beijing
from api.payments.money import fen_to_yuan_str, yuan_str_to_fen

TIMEOUT_SECONDS = 15
SUCCESS = "10000"
TEXT = "text/plain; charset=utf-8"
CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gb18030", "gb2312": "gb18030"}
MAX_FORM_BYTES = 64 * 1024
SCENES = ("miniprogram", "wap", "qr")


def _retryable(code: str, sub_code: str) -> bool:
    """20000 = service unavailable; *.SYSTEM_ERROR = Alipay's "try again" (§5.4)."""
    return code == "20000" or sub_code.upper().endswith("SYSTEM_ERROR")


class BeijingAliPay(AliPay):  # type: ignore[misc]
    """The SDK's client with the request `timestamp` in Beijing time, whatever the machine's TZ.

    Alipay reads `timestamp` as Asia/Shanghai wall-clock time (§5.2); the SDK fills it from
    the naive local clock, which is another day on a UTC machine from 16:00.
    """

    def build_body(
        self, method: str, biz_content: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = super().build_body(method, biz_content, **kwargs)
        if "timestamp" not in kwargs:
            body["timestamp"] = datetime.now(BEIJING).strftime(DASHED)
        return body


class AlipayChannel:
    """`PaymentChannel` for Alipay (支付宝)."""

    name = ChannelName.ALIPAY

    def __init__(self, settings: Config) -> None:
        self._settings = settings
        self._client: AliPay | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> AliPay:
        """The SDK client, built on first use and pointed at ALIPAY_GATEWAY (§5.1)."""
        with self._lock:
            if self._client is None:
                s = self._settings
                client = BeijingAliPay(
                    appid=s.ALIPAY_APPID,
                    app_notify_url=None,
                    app_private_key_string=Path(s.ALIPAY_APP_PRIVATE_KEY_FILE).read_text(),
                    alipay_public_key_string=Path(s.ALIPAY_PUBLIC_KEY_FILE).read_text(),
                    sign_type="RSA2",
                    config=AliPayConfig(timeout=TIMEOUT_SECONDS),
                )
                client._gateway = s.ALIPAY_GATEWAY
                self._client = client
            return self._client

    # Calls ----------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One SDK server call → the verified inner dict, whatever its `code`."""
        try:
            result = fn(*args, **kwargs)
        except urllib.error.HTTPError as exc:
            retryable = exc.code >= 500 or exc.code == 429
            raise ChannelError(
                f"{what}: HTTP {exc.code}", code=f"http_{exc.code}", retryable=retryable
            ) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ChannelError(
                f"{what}: {type(exc).__name__}", code="network", retryable=True
            ) from exc
        except AliPayValidationError as exc:
            raise ChannelError(f"{what}: response signature invalid", code="bad_signature") from exc
        except AliPayException as exc:
            # Unsigned replies and error_response: the gateway refused before the API ran.
            code = str(getattr(exc, "_AliPayException__code", None) or "unsigned")
            raise ChannelError(f"{what}: {exc}", code=code, retryable=code == "20000") from exc
        except (ValueError, AttributeError) as exc:
            # Not JSON, not UTF-8 (GBK error replies, §5.4), or no response object at all.
            raise ChannelError(
                f"{what}: unreadable response ({type(exc).__name__})",
                code="malformed",
                retryable=True,
            ) from exc
        if not isinstance(result, dict):
            raise ChannelError(f"{what}: response is not an object", code="malformed")
        return result

    def _ok(self, what: str, data: Mapping[str, Any]) -> ChannelError | None:
        """None when `code == "10000"`, else the business failure as a ChannelError (§0.7)."""
        code = str(data.get("code") or "")
        if code == SUCCESS:
            return None
        sub_code = str(data.get("sub_code") or code or "unknown")
        message = f"{what}: {data.get('sub_msg') or data.get('msg') or ''}"
        return ChannelError(message, code=sub_code, retryable=_retryable(code, sub_code))

    # Prepay ---------------------------------------------------------------------------------

    def prepay(self, req: PrepayRequest) -> PrepayResult:
        if req.scene not in SCENES:
            raise ChannelError(f"unknown Alipay scene {req.scene!r}", code="BAD_SCENE")
        biz: dict[str, Any] = {
            "out_trade_no": req.out_trade_no,
            "total_amount": fen_to_yuan_str(req.amount_fen),
            "subject": req.description[:256],
            "time_expire": to_beijing(req.expires_at, DASHED),
        }
        if req.scene == "wap":
            # An order string: no HTTP until the buyer's browser opens the URL.
            query = self.client.api_alipay_trade_wap_pay(
                biz.pop("subject"),
                biz.pop("out_trade_no"),
                biz.pop("total_amount"),
                notify_url=req.notify_url,
                **biz,
            )
            return PrepayResult({"pay_url": f"{self.client._gateway}?{query}"}, None)
        if req.scene == "qr":
            data = self._call(
                "precreate",
                self.client.api_alipay_trade_precreate,
                biz.pop("subject"),
                biz.pop("out_trade_no"),
                biz.pop("total_amount"),
                notify_url=req.notify_url,
                **biz,
            )
            if error := self._ok("precreate", data):
                raise error
            if not data.get("qr_code"):
                raise ChannelError("precreate: no qr_code", code="malformed")
            return PrepayResult({"qr_code": str(data["qr_code"])}, None)
        if not req.payer_id:
            raise ChannelError(
                "trade.create needs the buyer's Alipay user id", code="PAYER_REQUIRED"
            )
        biz.update(buyer_id=req.payer_id, product_code="JSAPI_PAY")
        data = self._call(
            "trade.create",
            self.client.server_api,
            "alipay.trade.create",
            biz,
            notify_url=req.notify_url,
        )
        if error := self._ok("trade.create", data):
            raise error
        trade_no = data.get("trade_no")
        if not trade_no:
            raise ChannelError("trade.create: no trade_no", code="malformed")
        return PrepayResult({"trade_no": str(trade_no)}, str(trade_no))

    # Query / close ----------------------------------------------------------------------------

    def query(self, out_trade_no: str) -> ChannelTrade:
        """`alipay.trade.query`. ACQ.TRADE_NOT_EXIST → NOT_FOUND: a precreate trade exists only
        once its QR code is scanned (§5.6), so "not found" means "unpaid"."""
        data = self._call(
            "trade.query", self.client.api_alipay_trade_query, out_trade_no=out_trade_no
        )
        if error := self._ok("trade.query", data):
            if error.code == "ACQ.TRADE_NOT_EXIST":
                return ChannelTrade.not_found(out_trade_no)
            raise error
        if data.get("out_trade_no") not in (None, out_trade_no):
            raise ChannelError("trade.query answered another order", code="malformed")
        status = data.get("trade_status")
        paid_at_raw = data.get("send_pay_date")
        if status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            state = TradeState.PAID
        elif status == "WAIT_BUYER_PAY":
            state = TradeState.OPEN
        elif status == "TRADE_CLOSED":
            # Closed unpaid, or closed by a full refund (§5.5): only a paid trade has a
            # send_pay_date.
            state = TradeState.REFUNDED if paid_at_raw else TradeState.CLOSED
        else:
            raise ChannelError(f"unknown trade_status {status!r}", code="malformed")
        try:
            amount = _fen(data.get("total_amount"))
            paid_at = parse_beijing(paid_at_raw, DASHED)
        except ValueError as exc:
            raise ChannelError(f"trade.query: {exc}", code="malformed") from exc
        return ChannelTrade(
            out_trade_no=out_trade_no,
            state=state,
            amount_fen=amount,
            transaction_id=data.get("trade_no") or None,
            paid_at=paid_at if state in (TradeState.PAID, TradeState.REFUNDED) else None,
            app_id=None,  # the signed reply answers our own app's request; it names no app id
            merchant_id=None,
            payer_id=data.get("buyer_user_id") or data.get("buyer_open_id") or None,
        )

    def close(self, out_trade_no: str) -> None:
        """`alipay.trade.close`. Not-exist is done (never scanned); any other refusal is
        settled by a query: paid → AlreadyPaid, closed → done."""
        data = self._call(
            "trade.close", self.client.api_alipay_trade_close, out_trade_no=out_trade_no
        )
        error = self._ok("trade.close", data)
        if error is None or error.code == "ACQ.TRADE_NOT_EXIST":
            return
        settle_refused_close(self, out_trade_no, error)

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
        """`alipay.trade.refund` with `out_request_no` = our out_refund_no, always: partial
        refunds need it and a retry with the same number refunds once (§5.6). Alipay refunds
        synchronously; the result notification arrives on the order's notify_url, so
        `notify_url` is not sent."""
        biz: dict[str, Any] = {"out_request_no": out_refund_no}
        if reason:
            biz["refund_reason"] = reason[:256]
        data = self._call(
            "trade.refund",
            self.client.api_alipay_trade_refund,
            fen_to_yuan_str(refund_fen),
            out_trade_no=out_trade_no,
            **biz,
        )
        if error := self._ok("trade.refund", data):
            raise error
        try:
            total_refunded = _fen(data.get("refund_fee"))
            refunded_at = parse_beijing(data.get("gmt_refund_pay"), DASHED)
        except ValueError as exc:
            raise ChannelError(f"trade.refund: {exc}", code="malformed") from exc
        state: str = "succeeded"
        if data.get("fund_change") != "Y":
            # "N" on a retry of a refund that already moved the money, or one still in progress:
            # ask about this very request.
            state, refunded_at = self._refund_state(out_trade_no, out_refund_no, refunded_at)
        return ChannelRefund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            refund_id=None,
            amount_fen=refund_fen,
            state=state,  # type: ignore[arg-type]
            succeeded_at=refunded_at if state == "succeeded" else None,
            total_refunded_fen=total_refunded,
        )

    def query_refund(self, *, out_trade_no: str, out_refund_no: str) -> ChannelRefund | None:
        """`alipay.trade.fastpay.refund.query` for one out_request_no → this refund's status.

        `code` 10000 only says the query ran (§0.7, §5.4); the refund succeeded only when the
        answer says `refund_status` REFUND_SUCCESS. An answer with the refund's data but no
        refund_status is a refund Alipay has not finished ("processing"): Alipay documents a
        missing refund_status as "not received or failed", and a query sent soon after the
        refund as possibly not yet successful, so it is never booked as money returned. An
        answer without the refund's data (or ACQ.TRADE_NOT_EXIST) means Alipay has no such
        refund → None. Alipay answers in yuan; the amount is converted to fen exactly.
        """
        try:
            data = self._refund_query_data(out_trade_no, out_refund_no)
        except ChannelError as exc:
            if exc.code == "ACQ.TRADE_NOT_EXIST":
                return None
            raise
        if not data.get("refund_amount") and not data.get("out_request_no"):
            return None
        if data.get("out_request_no") not in (None, out_refund_no) or data.get(
            "out_trade_no"
        ) not in (None, out_trade_no):
            raise ChannelError("refund.query answered another refund", code="malformed")
        try:
            amount = _fen(data.get("refund_amount"))
            refunded_at = parse_beijing(data.get("gmt_refund_pay"), DASHED)
        except ValueError as exc:
            raise ChannelError(f"refund.query: {exc}", code="malformed") from exc
        if amount is None:
            raise ChannelError("refund.query: no refund_amount", code="malformed")
        succeeded = data.get("refund_status") == "REFUND_SUCCESS"
        return ChannelRefund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            refund_id=None,
            amount_fen=amount,
            state="succeeded" if succeeded else "processing",
            succeeded_at=refunded_at if succeeded else None,
        )

    def _refund_query_data(self, out_trade_no: str, out_refund_no: str) -> dict[str, Any]:
        """The refund query → the verified inner dict (business failures raised).

        Built with the SDK's own `build_body` / `verified_sync_response` (its signing and
        reply verification) rather than `api_alipay_trade_fastpay_refund_query`, which takes
        no further parameters: the gateway returns `gmt_refund_pay` (when the money went back)
        only when `query_options` asks for it, and without it a healed refund's time would be
        the time we booked it, not the time the household got the money.
        """
        biz_content = {
            "out_request_no": out_refund_no,
            "out_trade_no": out_trade_no,
            "query_options": ["gmt_refund_pay"],
        }
        data = self._call(
            "refund.query",
            self.client.verified_sync_response,
            self.client.build_body("alipay.trade.fastpay.refund.query", biz_content),
            "alipay_trade_fastpay_refund_query_response",
        )
        if error := self._ok("refund.query", data):
            raise error
        return data

    def _refund_state(self, out_trade_no: str, out_refund_no: str, at: Any) -> tuple[str, Any]:
        """After a refund answered fund_change N: what the refund query says about it."""
        found = self.query_refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no)
        if found is not None and found.state == "succeeded":
            return "succeeded", found.succeeded_at or at
        return "processing", None

    # Notifications --------------------------------------------------------------------------

    def parse_notification(
        self,
        headers: Mapping[str, str],
        body: bytes,
        path: str,
        *,
        received_at: datetime | None = None,
    ) -> VerifiedNotification:
        """A form-POST notification (§5.5): verify, check app_id and seller_id, interpret
        trade_status. Refund results arrive here too (trade_status TRADE_SUCCESS for a
        partial refund, TRADE_CLOSED for a full one, both with refund_fee/gmt_refund)."""
        fields = _form(body)
        signature = fields.pop("sign", "")
        if not signature:
            raise NotificationRejected("bad_signature", "no sign")
        try:
            valid = self.client.verify(dict(fields), signature)  # verify() mutates: a copy
        except AliPayException as exc:
            raise NotificationRejected("bad_signature", "unsupported sign_type") from exc
        except (ValueError, TypeError) as exc:
            raise NotificationRejected("bad_signature", type(exc).__name__) from exc
        if not valid:
            raise NotificationRejected("bad_signature")
        if fields.get("app_id") != self._settings.ALIPAY_APPID:
            raise NotificationRejected("wrong_app_id", fields.get("app_id") or "")
        if fields.get("seller_id") != self._settings.ALIPAY_SELLER_ID:
            raise NotificationRejected("wrong_merchant", fields.get("seller_id") or "")
        out_trade_no = fields.get("out_trade_no")
        status = fields.get("trade_status")
        if not out_trade_no or not status:
            raise NotificationRejected("malformed", "no out_trade_no/trade_status")
        event_id = fields.get("notify_id") or None
        try:
            trade = self._notified_trade(fields, out_trade_no, status)
        except ValueError as exc:
            raise NotificationRejected("malformed", str(exc)) from exc
        if fields.get("refund_fee") and fields.get("gmt_refund"):
            refund = self._notified_refund(fields, out_trade_no)
            return VerifiedNotification("refund", trade, refund, event_id)
        if trade.state == TradeState.PAID:
            if trade.amount_fen is None or not trade.transaction_id:
                raise NotificationRejected("malformed", "paid without total_amount/trade_no")
            return VerifiedNotification("payment", trade, None, event_id)
        if trade.state == TradeState.CLOSED:
            return VerifiedNotification("closed", trade, None, event_id)
        return VerifiedNotification("pending", trade, None, event_id)  # WAIT_BUYER_PAY

    def _notified_trade(
        self, fields: Mapping[str, str], out_trade_no: str, status: str
    ) -> ChannelTrade:
        refunded = bool(fields.get("refund_fee") and fields.get("gmt_refund"))
        if status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            state = TradeState.PAID
        elif status == "TRADE_CLOSED":
            state = TradeState.REFUNDED if refunded else TradeState.CLOSED
        elif status == "WAIT_BUYER_PAY":
            state = TradeState.OPEN
        else:
            raise ValueError(f"unknown trade_status {status!r}")
        return ChannelTrade(
            out_trade_no=out_trade_no,
            state=state,
            amount_fen=_fen(fields.get("total_amount")),
            transaction_id=fields.get("trade_no") or None,
            paid_at=parse_beijing(fields.get("gmt_payment"), DASHED),
            app_id=fields.get("app_id"),
            merchant_id=fields.get("seller_id"),
            payer_id=fields.get("buyer_id") or fields.get("buyer_open_id") or None,
        )

    def _notified_refund(self, fields: Mapping[str, str], out_trade_no: str) -> ChannelRefund:
        """`refund_fee` in a notification is the trade's cumulative refund (退款总金额), so
        this refund's own amount comes from a refund query for `out_biz_no`."""
        out_refund_no = fields.get("out_biz_no")
        if not out_refund_no:
            raise NotificationRejected("malformed", "refund without out_biz_no")
        try:
            total_refunded = _fen(fields.get("refund_fee"))
            refunded_at = parse_beijing(fields.get("gmt_refund"), DASHED)
        except ValueError as exc:
            raise NotificationRejected("malformed", str(exc)) from exc
        try:
            queried = self.query_refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no)
        except ChannelError as exc:
            raise NotificationRejected("upstream_unavailable", str(exc)) from exc
        if queried is None:
            raise NotificationRejected("upstream_unavailable", "refund query has no amount")
        amount = queried.amount_fen
        return ChannelRefund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            refund_id=None,
            amount_fen=amount,
            state="succeeded",
            succeeded_at=refunded_at,
            total_refunded_fen=total_refunded,
        )

    def success_reply(self) -> Reply:
        """Exactly the 7 bytes `success`: anything else makes Alipay resend (§5.5)."""
        return Reply(200, b"success", TEXT)

    def failure_reply(self, reason: str) -> Reply:
        return Reply(200, b"fail", TEXT)

    # Bill -----------------------------------------------------------------------------------

    def fetch_bill(self, bill_date: date) -> bytes | None:
        """Bill URL via `server_api` (no SDK helper, §5.8), fetched at once (it lives 30 s):
        the `csv.zip` as sent, None when there is no bill for the day."""
        data = self._call(
            "bill.downloadurl.query",
            self.client.server_api,
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": bill_date.isoformat()},
        )
        if error := self._ok("bill.downloadurl.query", data):
            if error.code.lower().endswith(("bill_not_exist", "no_bill_data")):
                return None
            raise error
        url = data.get("bill_download_url")
        if not url:
            raise ChannelError("bill.downloadurl.query: no URL", code="malformed")
        try:
            response = requests.get(str(url), timeout=TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            raise ChannelError(
                f"bill download: {type(exc).__name__}", code="network", retryable=True
            ) from exc
        if response.status_code != 200:
            raise ChannelError(
                f"bill download: HTTP {response.status_code}",
                code=f"http_{response.status_code}",
                retryable=True,
            )
        return bytes(response.content)

    def download_bill(self, bill_date: date) -> list[BillRow]:
        """The day's bill rows (`fetch_bill` unzipped, GBK detail CSV parsed); no bill → []."""
        data = self.fetch_bill(bill_date)
        if data is None:
            return []
        try:
            return parse_alipay_bill_zip(data)
        except (MalformedBill, UnicodeDecodeError) as exc:
            raise ChannelError(f"bill download: {exc}", code="malformed") from exc


def _fen(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return yuan_str_to_fen(str(value))


def _form(body: bytes) -> dict[str, str]:
    """A form-urlencoded body → flat dict, decoded in the notification's own `charset`
    (utf-8, or GBK for orders created in GBK, §5.5). Repeated keys are refused."""
    if len(body) > MAX_FORM_BYTES:
        raise NotificationRejected("malformed", "body too large")
    try:
        text = body.decode("ascii")
        probe = dict(parse_qsl(text, keep_blank_values=True, encoding="latin-1"))
        charset = CHARSETS.get((probe.get("charset") or "utf-8").lower())
        if charset is None:
            raise NotificationRejected("malformed", f"charset {probe.get('charset')!r}")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, encoding=charset, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotificationRejected("malformed", "not a form body") from exc
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise NotificationRejected("malformed", f"repeated field {key}")
        fields[key] = value
    return fields
