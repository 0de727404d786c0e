"""WeChat Pay API v3 (JSON, RSA-SHA256, AES-256-GCM) through wechatpayv3 2.0.4, public-key mode.

New merchant accounts get a WeChat Pay public key (`PUB_KEY_ID_...`) instead of platform
certificates (PROTOCOLS.md §0.1, §2.6). wechatpayv3 is built with `public_key` and
`public_key_id`, so its constructor never calls `/v3/certificates`, and redirected to our base
URL through `_core._gate_way` (§2.7). It signs requests and verifies every 2xx response.

Callbacks we verify ourselves (§2.3, §2.4), because wechatpayv3's `callback()`:
- does not check how old `Wechatpay-Timestamp` is (§0.8) — we refuse more than 5 minutes;
- verifies over the body decoded to text, and for an unknown serial goes fetching platform
  certificates — we verify over the raw bytes and accept only WECHAT_PAY_PUBLIC_KEY_ID;
- returns None for both a forgery and a decryption failure — we need the reason for the log.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import WeChatPay, WeChatPayType

from api.config import Config
from api.payments.channels import wechat_v2_protocol as v2proto
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
    settle_refused_close,
)
from api.payments.channels.bills import MalformedBill, parse_wechat_bill
from api.payments.channels.timefmt import parse_rfc3339, to_rfc3339_beijing
from api.payments.channels.wechat_v2 import TRADE_STATES

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
MAX_CLOCK_SKEW_SECONDS = 300
TIMEOUT = (5, 15)
FAIL_BODY = json.dumps({"code": "FAIL", "message": "失败"}, ensure_ascii=False).encode("utf-8")
JSON = "application/json; charset=utf-8"
REFUND_STATES = {
    "SUCCESS": "succeeded",
    "PROCESSING": "processing",
    "CLOSED": "closed",
    "ABNORMAL": "failed",
}
REFUND_EVENTS = {"REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"}
RETRYABLE_CODES = {"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "STATEMENT_CREATING"}
# Rejections caused by the sender (4xx); anything else the core reports is our fault (5xx).
CLIENT_FAULTS = {
    "bad_signature",
    "stale_timestamp",
    "unknown_serial",
    "wrong_app_id",
    "wrong_merchant",
    "malformed",
    "decrypt_failed",
}


def load_private_key_pem(path: str) -> str:
    """The merchant private key as PKCS#8 PEM: wechatpayv3 only accepts that form (it wraps
    anything else in `BEGIN PRIVATE KEY` lines), while keys are often issued as PKCS#1."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_public_key(path: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ChannelError("WeChat Pay public key is not RSA", code="config")
    return key


def public_key_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


class WeChatV3Channel:
    """`PaymentChannel` for WeChat Pay API v3 (小程序 JSAPI 下单)."""

    name = ChannelName.WECHAT

    def __init__(self, settings: Config) -> None:
        self._settings = settings
        self._client: WeChatPay | None = None
        self._public_key: rsa.RSAPublicKey | None = None
        self._lock = threading.Lock()

    # Client ---------------------------------------------------------------------------------

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """The WeChat Pay public key (never the merchant's) that verifies WeChat's signatures."""
        with self._lock:
            if self._public_key is None:
                self._public_key = load_public_key(self._settings.WECHAT_PAY_PUBLIC_KEY_FILE)
            return self._public_key

    @property
    def client(self) -> WeChatPay:
        """wechatpayv3 in public-key mode, built on first use, pointed at our gateway base."""
        public_key = self.public_key
        with self._lock:
            if self._client is None:
                s = self._settings
                client = WeChatPay(
                    wechatpay_type=WeChatPayType.MINIPROG,
                    mchid=s.WECHAT_MCH_ID,
                    private_key=load_private_key_pem(s.WECHAT_MCH_PRIVATE_KEY_FILE),
                    cert_serial_no=s.WECHAT_MCH_CERT_SERIAL,
                    appid=s.WECHAT_APPID,
                    apiv3_key=s.WECHAT_APIV3_KEY,
                    timeout=TIMEOUT,
                    public_key=public_key_pem(public_key),
                    public_key_id=s.WECHAT_PAY_PUBLIC_KEY_ID,
                )
                client._core._gate_way = s.WECHAT_PAY_API_BASE.rstrip("/")
                self._client = client
            return self._client

    # Calls ----------------------------------------------------------------------------------

    def _request(
        self, what: str, fn: Callable[..., tuple[int, Any]], *args: Any, **kwargs: Any
    ) -> tuple[int, Any]:
        """One wechatpayv3 call → (status, body). The SDK returns 4xx/5xx without raising and
        raises a bare Exception when a 2xx response fails verification (§2.7)."""
        try:
            status, body = fn(*args, **kwargs)
        except requests.RequestException as exc:
            raise ChannelError(
                f"{what}: {type(exc).__name__}", code="network", retryable=True
            ) from exc
        except Exception as exc:  # wechatpayv3 raises bare Exception on bad response signatures
            code = "bad_signature" if "verify" in str(exc) else "sdk_error"
            raise ChannelError(f"{what}: {exc}", code=code) from exc
        return status, body

    def _error(self, what: str, status: int, body: Any) -> ChannelError:
        """A non-2xx answer, `{code, message}` in JSON when WeChat wrote it (§2.1)."""
        code, message = f"http_{status}", ""
        try:
            data = json.loads(body)
            code = str(data.get("code") or code)
            message = str(data.get("message") or "")
        except (TypeError, ValueError, AttributeError):
            pass
        retryable = status >= 500 or status == 429 or code in RETRYABLE_CODES
        return ChannelError(f"{what}: HTTP {status} {message}", code=code, retryable=retryable)

    def _json(self, what: str, body: Any) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise ChannelError(f"{what}: response is not JSON", code="malformed") from exc
        if not isinstance(data, dict):
            raise ChannelError(f"{what}: response is not an object", code="malformed")
        return data

    # Prepay ---------------------------------------------------------------------------------

    def prepay(self, req: PrepayRequest) -> PrepayResult:
        """POST /v3/pay/transactions/jsapi → `wx.requestPayment` params with RSA paySign."""
        if not req.payer_id:
            raise ChannelError("JSAPI needs the payer's openid", code="PAYER_REQUIRED")
        status, body = self._request(
            "prepay",
            self.client.pay,
            description=req.description[:127],
            out_trade_no=req.out_trade_no,
            amount={"total": req.amount_fen, "currency": "CNY"},
            payer={"openid": req.payer_id},
            time_expire=to_rfc3339_beijing(req.expires_at),
            notify_url=req.notify_url,
            scene_info={"payer_client_ip": req.client_ip},
        )
        if status != 200:
            raise self._error("prepay", status, body)
        prepay_id = self._json("prepay", body).get("prepay_id")
        if not prepay_id:
            raise ChannelError("prepay: no prepay_id", code="malformed")
        return PrepayResult(pay_params=self.pay_params(prepay_id), channel_ref=prepay_id)

    def pay_params(self, prepay_id: str, *, timestamp: int | None = None) -> dict[str, str]:
        """paySign = base64(SHA256withRSA(appId\\ntimeStamp\\nnonceStr\\npackage\\n)) with the
        merchant private key, signType "RSA" (PROTOCOLS.md §2.5)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = v2proto.new_nonce()
        package = f"prepay_id={prepay_id}"
        pay_sign = self.client.sign([self._settings.WECHAT_APPID, ts, nonce, package])
        return {
            "timeStamp": ts,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": pay_sign,
        }

    # Query / close ----------------------------------------------------------------------------

    def query(self, out_trade_no: str) -> ChannelTrade:
        """GET /v3/pay/transactions/out-trade-no/{no} (404 ORDER_NOT_EXIST → NOT_FOUND)."""
        status, body = self._request("query", self.client.query, out_trade_no=out_trade_no)
        if status == 404:
            error = self._error("query", status, body)
            if error.code in ("ORDER_NOT_EXIST", "ORDERNOTEXIST"):
                return ChannelTrade.not_found(out_trade_no)
            raise error
        if status != 200:
            raise self._error("query", status, body)
        data = self._json("query", body)
        self._check_ids(data, error=ChannelError)
        if data.get("out_trade_no") != out_trade_no:
            raise ChannelError("query answered another order", code="malformed")
        state = TRADE_STATES.get(str(data.get("trade_state")))
        if state is None:
            raise ChannelError(f"unknown trade_state {data.get('trade_state')!r}", code="malformed")
        try:
            return self._trade(data, state)
        except ValueError as exc:
            raise ChannelError(f"query: {exc}", code="malformed") from exc

    def _check_ids(self, data: Mapping[str, Any], *, error: type[Exception]) -> None:
        """appid (when the resource has one; refund resources do not) and mchid must be ours."""
        if "appid" in data and data["appid"] != self._settings.WECHAT_APPID:
            raise _make(error, "wrong_app_id", str(data.get("appid")))
        if data.get("mchid") != self._settings.WECHAT_MCH_ID:
            raise _make(error, "wrong_merchant", str(data.get("mchid")))

    def _trade(self, data: Mapping[str, Any], state: TradeState) -> ChannelTrade:
        amount = data.get("amount") or {}
        total = amount.get("total") if isinstance(amount, dict) else None
        if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
            raise ValueError(f"amount.total is not an integer: {total!r}")
        payer = data.get("payer") or {}
        return ChannelTrade(
            out_trade_no=str(data["out_trade_no"]),
            state=state,
            amount_fen=total,
            transaction_id=data.get("transaction_id") or None,
            paid_at=parse_rfc3339(data.get("success_time")),
            app_id=data.get("appid"),
            merchant_id=data.get("mchid"),
            payer_id=payer.get("openid") if isinstance(payer, dict) else None,
        )

    def close(self, out_trade_no: str) -> None:
        """POST …/close → 204. A paid order is refused; the exact v3 error code for that is
        not documented where we looked (PROTOCOLS.md §1.6, §8), so any other refusal is
        settled by asking: paid → AlreadyPaid, closed or unknown → done."""
        status, body = self._request("close", self.client.close, out_trade_no=out_trade_no)
        if status in (200, 204):
            return
        error = self._error("close", status, body)
        if error.code in ("ORDERPAID", "ORDER_PAID", "TRADE_SUCCESS"):
            raise AlreadyPaid(f"{out_trade_no} is paid", code=error.code) from error
        if error.code in ("ORDER_CLOSED", "ORDERCLOSED", "ORDER_NOT_EXIST", "ORDERNOTEXIST"):
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
        """POST /v3/refund/domestic/refunds; the outcome may come now or by REFUND.* callback."""
        status, body = self._request(
            "refund",
            self.client.refund,
            out_refund_no=out_refund_no,
            amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"},
            out_trade_no=out_trade_no,
            reason=reason[:80] or None,
            notify_url=notify_url,
        )
        if status != 200:
            raise self._error("refund", status, body)
        data = self._json("refund", body)
        try:
            return self._refund(data, default_out_trade_no=out_trade_no)
        except ValueError as exc:
            raise ChannelError(f"refund: {exc}", code="malformed") from exc

    def _refund(self, data: Mapping[str, Any], *, default_out_trade_no: str = "") -> ChannelRefund:
        status = data.get("refund_status") or data.get("status")
        state = REFUND_STATES.get(str(status))
        if state is None:
            raise ValueError(f"unknown refund status {status!r}")
        amount = data.get("amount") or {}
        refund = amount.get("refund") if isinstance(amount, dict) else None
        if isinstance(refund, bool) or not isinstance(refund, int):
            raise ValueError(f"amount.refund is not an integer: {refund!r}")
        out_refund_no = data.get("out_refund_no")
        if not out_refund_no:
            raise ValueError("no out_refund_no")
        return ChannelRefund(
            out_trade_no=str(data.get("out_trade_no") or default_out_trade_no),
            out_refund_no=str(out_refund_no),
            refund_id=data.get("refund_id") or None,
            amount_fen=refund,
            state=state,  # type: ignore[arg-type]
            succeeded_at=parse_rfc3339(data.get("success_time")) if state == "succeeded" else None,
        )

    def query_refund(self, *, out_trade_no: str, out_refund_no: str) -> ChannelRefund | None:
        """GET /v3/refund/domestic/refunds/{out_refund_no} (§2.1) → this refund's status.

        wechatpayv3 verifies the 200's signature with the WeChat Pay public key (§2.7); a
        failure is a ChannelError, never an answer. 404 RESOURCE_NOT_EXISTS → None.
        """
        status, body = self._request(
            "refund query", self.client.query_refund, out_refund_no=out_refund_no
        )
        if status == 404:
            error = self._error("refund query", status, body)
            if error.code in ("RESOURCE_NOT_EXISTS", "NOT_FOUND"):
                return None
            raise error
        if status != 200:
            raise self._error("refund query", status, body)
        data = self._json("refund query", body)
        try:
            refund = self._refund(data)
        except ValueError as exc:
            raise ChannelError(f"refund query: {exc}", code="malformed") from exc
        if (refund.out_trade_no, refund.out_refund_no) != (out_trade_no, out_refund_no):
            raise ChannelError("refund query answered another refund", code="malformed")
        return refund

    # Callbacks ------------------------------------------------------------------------------

    def verify_callback(
        self, headers: Mapping[str, str], body: bytes, *, received_at: datetime | None = None
    ) -> None:
        """Signature over the RAW body bytes with the WeChat Pay public key (§2.3).

        Message: `timestamp\\nnonce\\nbody\\n`. Probe callbacks with deliberately wrong
        signatures (§2.3) simply fail here.
        """
        h = {k.lower(): v for k, v in headers.items()}
        timestamp = h.get("wechatpay-timestamp", "")
        nonce = h.get("wechatpay-nonce", "")
        signature = h.get("wechatpay-signature", "")
        if h.get("wechatpay-signature-type", SIGNATURE_TYPE) != SIGNATURE_TYPE:
            raise NotificationRejected("bad_signature", "unsupported Wechatpay-Signature-Type")
        if not (timestamp and nonce and signature):
            raise NotificationRejected("bad_signature", "missing Wechatpay-* headers")
        if h.get("wechatpay-serial") != self._settings.WECHAT_PAY_PUBLIC_KEY_ID:
            raise NotificationRejected("unknown_serial", h.get("wechatpay-serial") or "")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise NotificationRejected("malformed", "Wechatpay-Timestamp is not a number")
        at = received_at.timestamp() if received_at is not None else time.time()
        if abs(at - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            raise NotificationRejected("stale_timestamp", timestamp)
        try:
            raw_signature = base64.b64decode(signature, validate=True)
        except ValueError as exc:
            raise NotificationRejected("bad_signature", "signature is not base64") from exc
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        try:
            self.public_key.verify(raw_signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise NotificationRejected("bad_signature") from exc

    def decrypt_resource(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """AEAD_AES_256_GCM with the APIv3 key, nonce and associated_data as UTF-8 (§2.4)."""
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise NotificationRejected("malformed", f"algorithm {resource.get('algorithm')!r}")
        try:
            aes = AESGCM(self._settings.WECHAT_APIV3_KEY.encode("utf-8"))
            plain = aes.decrypt(
                str(resource["nonce"]).encode("utf-8"),
                base64.b64decode(str(resource["ciphertext"]), validate=True),
                str(resource.get("associated_data") or "").encode("utf-8"),
            )
            data = json.loads(plain)
        except (KeyError, ValueError, InvalidTag) as exc:
            raise NotificationRejected("decrypt_failed", type(exc).__name__) from exc
        if not isinstance(data, dict):
            raise NotificationRejected("malformed", "resource is not an object")
        return data

    def parse_notification(
        self,
        headers: Mapping[str, str],
        body: bytes,
        path: str,
        *,
        received_at: datetime | None = None,
    ) -> VerifiedNotification:
        """Verify, decrypt and read a v3 callback; payment and refund are told apart by
        `event_type`, so both notify URLs may point here."""
        self.verify_callback(headers, body, received_at=received_at)
        try:
            envelope = json.loads(body)
        except ValueError as exc:
            raise NotificationRejected("malformed", "body is not JSON") from exc
        if not isinstance(envelope, dict) or not isinstance(envelope.get("resource"), dict):
            raise NotificationRejected("malformed", "no resource")
        event_type = envelope.get("event_type")
        event_id = envelope.get("id")
        resource = self.decrypt_resource(envelope["resource"])
        self._check_ids(resource, error=NotificationRejected)
        try:
            if event_type == "TRANSACTION.SUCCESS":
                if resource.get("trade_state") != "SUCCESS" or not resource.get("out_trade_no"):
                    raise NotificationRejected("malformed", "TRANSACTION.SUCCESS not SUCCESS")
                trade = self._trade(resource, TradeState.PAID)
                if trade.amount_fen is None or not trade.transaction_id:
                    raise NotificationRejected("malformed", "paid without amount/transaction_id")
                return VerifiedNotification("payment", trade, None, event_id)
            if event_type in REFUND_EVENTS:
                refund = self._refund(resource)
                return VerifiedNotification("refund", None, refund, event_id)
        except ValueError as exc:
            raise NotificationRejected("malformed", str(exc)) from exc
        # A genuine event we do not act on: acknowledge it, change nothing.
        return VerifiedNotification("pending", None, None, event_id)

    def success_reply(self) -> Reply:
        return Reply(204, b"", JSON)

    def failure_reply(self, reason: str) -> Reply:
        """4xx when the sender is at fault, 5xx when we are; WeChat retries on both (§2.4)."""
        return Reply(400 if reason in CLIENT_FAULTS else 500, FAIL_BODY, JSON)

    # Bill -----------------------------------------------------------------------------------

    def fetch_bill(self, bill_date: date) -> bytes | None:
        """GET /v3/bill/tradebill → download_url → file, SHA1 `hash_value` checked (§2.1);
        the (uncompressed) bill as sent, None when there is no bill for the day."""
        status, body = self._request(
            "tradebill", self.client.trade_bill, bill_date=bill_date.isoformat(), bill_type="ALL"
        )
        if status != 200:
            error = self._error("tradebill", status, body)
            if error.code in ("NO_STATEMENT_EXIST", "NO_BILL_EXIST"):
                return None
            raise error
        info = self._json("tradebill", body)
        url, hash_type = str(info.get("download_url") or ""), info.get("hash_type")
        expected = str(info.get("hash_value") or "").lower()
        if hash_type != "SHA1" or not expected:
            raise ChannelError(f"tradebill: unsupported hash {hash_type!r}", code="malformed")
        if not url.startswith(self.client._core._gate_way + "/"):
            # wechatpayv3 only strips its own gateway prefix; anything else would be mangled.
            raise ChannelError("tradebill: download_url on another host", code="malformed")
        status, content = self._request("billdownload", self.client.download_bill, url)
        if status != 200:
            raise self._error("billdownload", status, content)
        raw = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        # The documented digest is of the original (uncompressed) bill; a digest of the file
        # as transferred proves the same integrity, so either is accepted.
        digests = {hashlib.sha1(data).hexdigest(), hashlib.sha1(raw).hexdigest()}  # noqa: S324
        if not any(hmac.compare_digest(d, expected) for d in digests):
            raise ChannelError("tradebill: hash_value mismatch", code="bad_hash")
        return data

    def download_bill(self, bill_date: date) -> list[BillRow]:
        """The day's bill rows (`fetch_bill` parsed); no bill → []."""
        data = self.fetch_bill(bill_date)
        if data is None:
            return []
        try:
            return parse_wechat_bill(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, MalformedBill) as exc:
            raise ChannelError(f"tradebill: {exc}", code="malformed") from exc


def _make(error: type[Exception], reason: str, detail: str) -> Exception:
    if error is NotificationRejected:
        return NotificationRejected(reason, detail)
    return ChannelError(f"response names {detail}", code=reason)
