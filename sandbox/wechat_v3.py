"""WeChat Pay API v3 (JSON) endpoints in public-key mode (PROTOCOLS.md §2).

Every request must carry the merchant's `Authorization` header (§2.2): signature over
`METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n` with the merchant private key, checked with
`merchant_public_key.pem`, timestamp within 5 minutes, mchid and certificate serial ours;
otherwise 401 SIGN_ERROR. Every reply, 204 included, is signed with the "WeChat Pay public
key" pair and carries `Wechatpay-Serial: PUB_KEY_ID_…` (§2.3), because wechatpayv3 verifies
every 2xx response and raises otherwise (§2.7).

Leniency: notify_url may be http (the real gateway wants https) so a laptop can receive.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import secrets
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, request

from sandbox import bills, crypto, ids, payments
from sandbox.clock import Clock, rfc3339
from sandbox.context import Sandbox, current
from sandbox.store import CLOSED, PAID, BillFile, Order, Refund

bp = Blueprint("wechat_v3", __name__, url_prefix="/v3")

SCHEME = "WECHATPAY2-SHA256-RSA2048"
CLOCK_SKEW = 300  # seconds (§2.2)
OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
_AUTH_ITEM = re.compile(r'(\w+)="([^"]*)"')
TRADE_STATE_DESC = {
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "NOTPAY": "未支付",
    "CLOSED": "已关闭",
}


class V3Error(Exception):
    """A v3 error reply `{code, message}` with its HTTP status (§2.1)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status=status, content_type="application/json; charset=utf-8")


@bp.errorhandler(V3Error)
def _on_error(error: V3Error) -> Response:
    return _json({"code": error.code, "message": error.message}, error.status)


def signature_headers(sandbox: Sandbox, body: bytes, *, forged: bool = False) -> dict[str, str]:
    """The Wechatpay-* headers over `timestamp\\nnonce\\nbody\\n` (§2.3)."""
    timestamp, nonce = str(Clock.epoch()), ids.nonce(32)
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    key_file = "merchant_private_key.pem" if forged else "wechatpay_private_key.pem"
    key = crypto.load_private_key(sandbox.settings.key_path(key_file))
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": crypto.rsa_sign(key, message),
        "Wechatpay-Serial": sandbox.settings.WECHAT_PAY_PUBLIC_KEY_ID,
        "Wechatpay-Signature-Type": SCHEME,
        "Request-ID": ids.request_id(),
    }


@bp.before_request
def _authenticate() -> Response | None:
    """401 SIGN_ERROR unless the Authorization header verifies (§2.2)."""
    sandbox = current()
    s = sandbox.settings
    header = request.headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    items = dict(_AUTH_ITEM.findall(rest))
    if scheme != SCHEME or not all(
        items.get(k) for k in ("mchid", "nonce_str", "signature", "timestamp", "serial_no")
    ):
        return _json({"code": "SIGN_ERROR", "message": "Authorization头缺失或格式错误"}, 401)
    if items["mchid"] != s.WECHAT_MCH_ID:
        return _json({"code": "SIGN_ERROR", "message": "商户号与签名不匹配"}, 401)
    if items["serial_no"].upper() != s.WECHAT_MCH_CERT_SERIAL.upper():
        return _json({"code": "SIGN_ERROR", "message": "商户证书序列号有误"}, 401)
    try:
        skew = abs(Clock.epoch() - int(items["timestamp"]))
    except ValueError:
        skew = CLOCK_SKEW + 1
    if skew > CLOCK_SKEW:
        return _json({"code": "SIGN_ERROR", "message": "请求时间戳与系统时间相差超过5分钟"}, 401)
    target = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not target:
        query = request.query_string.decode("latin-1")
        target = request.path + (f"?{query}" if query else "")
    message = (
        f"{request.method}\n{target}\n{items['timestamp']}\n{items['nonce_str']}\n".encode()
        + request.get_data(cache=True)
        + b"\n"
    )
    public_key = crypto.load_public_key(s.key_path("merchant_public_key.pem"))
    if not crypto.rsa_verify(public_key, message, items["signature"]):
        return _json({"code": "SIGN_ERROR", "message": "签名错误"}, 401)
    if not request.headers.get("User-Agent"):
        return _json({"code": "PARAM_ERROR", "message": "HTTP头缺少User-Agent"}, 400)
    return None


@bp.after_request
def _sign(response: Response) -> Response:
    """Sign every reply, 204 included (§2.3, §2.7)."""
    body = b"" if response.status_code == 204 else response.get_data()
    response.headers.update(signature_headers(current(), body))
    return response


def _body() -> dict[str, Any]:
    try:
        data = json.loads(request.get_data(cache=True) or b"{}")
    except ValueError:
        raise V3Error(400, "PARAM_ERROR", "请求体不是合法的JSON") from None
    if not isinstance(data, dict):
        raise V3Error(400, "PARAM_ERROR", "请求体须为JSON对象")
    return data


def _check_mchid(value: Any) -> None:
    if value != current().settings.WECHAT_MCH_ID:
        raise V3Error(400, "PARAM_ERROR", "mchid与请求商户号不一致")


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise V3Error(400, "PARAM_ERROR", f"{name}须为正整数(分)")
    return value


# Prepay, query, close --------------------------------------------------------------------------


@bp.post("/pay/transactions/jsapi")
def jsapi() -> Response:
    sandbox = current()
    s = sandbox.settings
    data = _body()
    for name in ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount", "payer"):
        if not data.get(name):
            raise V3Error(
                400, "PARAM_ERROR", f"输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败"
            )
    _check_mchid(data["mchid"])
    if data["appid"] != s.WECHAT_APPID:
        raise V3Error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    out_trade_no = str(data["out_trade_no"])
    if not OUT_TRADE_NO.match(out_trade_no):
        raise V3Error(400, "PARAM_ERROR", "out_trade_no须为6-32位数字、字母或_-|*")
    if len(str(data["description"])) > 127:
        raise V3Error(400, "PARAM_ERROR", "description长度超过限制")
    if not re.match(r"^https?://[^\s?#]+$", str(data["notify_url"])):
        raise V3Error(400, "PARAM_ERROR", "notify_url须为不带参数的完整URL")
    amount = data["amount"] if isinstance(data["amount"], dict) else {}
    total = _positive_int(amount.get("total"), "amount.total")
    if amount.get("currency", "CNY") != "CNY":
        raise V3Error(400, "PARAM_ERROR", "currency仅支持CNY")
    payer = data["payer"] if isinstance(data["payer"], dict) else {}
    if not payer.get("openid"):
        raise V3Error(400, "PARAM_ERROR", "payer.openid必填")
    faults = sandbox.faults(out_trade_no)
    if faults.has("prepay_5xx"):
        raise V3Error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
    fingerprint = (data["appid"], total, data["description"], payer["openid"], "JSAPI")
    now = sandbox.clock.now()
    with sandbox.store.lock:
        order = sandbox.store.get("wechat", out_trade_no)
        if order is not None:
            if order.state == PAID:
                raise V3Error(400, "ORDERPAID", "该订单已支付")
            if order.state == CLOSED:
                raise V3Error(400, "ORDER_CLOSED", "该订单已关闭")
            if order.fingerprint != fingerprint or order.api != "v3":
                raise V3Error(403, "OUT_TRADE_NO_USED", "商户订单号重复")
        else:
            expires = None
            if data.get("time_expire"):
                try:
                    expires = datetime.fromisoformat(str(data["time_expire"]))
                except ValueError:
                    raise V3Error(400, "PARAM_ERROR", "time_expire须为RFC3339格式") from None
            order = Order(
                channel="wechat",
                api="v3",
                out_trade_no=out_trade_no,
                amount_fen=total,
                description=str(data["description"]),
                app_id=str(data["appid"]),
                merchant_id=str(data["mchid"]),
                created_at=now,
                notify_url=str(data["notify_url"]),
                payer_id=str(payer["openid"]),
                attach=str(data.get("attach") or "") or None,
                trade_type="JSAPI",
                fingerprint=fingerprint,
                expires_at=expires,
                prepay_id=ids.wechat_prepay_id(now),
            )
            sandbox.store.put(order)
    response = _json(
        {
            "prepay_id": order.prepay_id,
            "pay_url": payments.pay_url(sandbox, "wechat", out_trade_no),  # sandbox extra
        }
    )
    if faults.has("timeout"):
        sandbox.hang(faults.argument("timeout", s.SANDBOX_HANG_SECONDS) or 0)
    return response


def transaction_json(order: Order) -> dict[str, Any]:
    """The transaction object of query replies and payment callbacks (§2.4)."""
    state = order.wechat_trade_state
    data: dict[str, Any] = {
        "appid": order.app_id,
        "mchid": order.merchant_id,
        "out_trade_no": order.out_trade_no,
        "trade_state": state,
        "trade_state_desc": TRADE_STATE_DESC[state],
        "attach": order.attach or "",
        "payer": {"openid": order.payer_id or ""},
        "amount": {"total": order.amount_fen, "currency": "CNY"},
    }
    if order.state == PAID and order.paid_at is not None:
        data.update(
            transaction_id=order.transaction_id,
            trade_type=order.trade_type,
            bank_type="OTHERS",
            success_time=rfc3339(order.paid_at),
        )
        data["amount"].update(payer_total=order.amount_fen, payer_currency="CNY")
    return data


def _query(order: Order | None, out_trade_no: str | None) -> Response:
    sandbox = current()
    _check_mchid(request.args.get("mchid"))
    faults = sandbox.faults(order.out_trade_no if order else out_trade_no)
    if faults.has("query_5xx"):
        raise V3Error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
    if order is None:
        raise V3Error(404, "ORDER_NOT_EXIST", "订单不存在")
    with sandbox.store.lock:
        response = _json(transaction_json(order))
    if faults.has("timeout"):
        sandbox.hang(faults.argument("timeout", sandbox.settings.SANDBOX_HANG_SECONDS) or 0)
    return response


@bp.get("/pay/transactions/out-trade-no/<out_trade_no>")
def query_by_out_trade_no(out_trade_no: str) -> Response:
    return _query(current().store.get("wechat", out_trade_no), out_trade_no)


@bp.get("/pay/transactions/id/<transaction_id>")
def query_by_id(transaction_id: str) -> Response:
    return _query(current().store.find_by_transaction("wechat", transaction_id), None)


@bp.post("/pay/transactions/out-trade-no/<out_trade_no>/close")
def close(out_trade_no: str) -> Response:
    """204 No Content on success; closing a closed order again is harmless (§2.1)."""
    sandbox = current()
    _check_mchid(_body().get("mchid"))
    with sandbox.store.lock:
        order = sandbox.store.get("wechat", out_trade_no)
        if order is None:
            raise V3Error(404, "ORDER_NOT_EXIST", "订单不存在")
        if order.state == PAID:
            raise V3Error(400, "ORDERPAID", "订单已支付")
        if order.state != CLOSED:
            order.state = CLOSED
            order.closed_at = sandbox.clock.now()
    return Response(status=204)


# Refunds ---------------------------------------------------------------------------------------


def refund_json(order: Order, refund: Refund) -> dict[str, Any]:
    data: dict[str, Any] = {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339(refund.created_at),
        "status": refund.status,
        "funds_account": "AVAILABLE",
        "amount": {
            "total": order.amount_fen,
            "refund": refund.amount_fen,
            "payer_total": order.amount_fen,
            "payer_refund": refund.amount_fen,
            "settlement_total": order.amount_fen,
            "settlement_refund": refund.amount_fen,
            "discount_refund": 0,
            "currency": "CNY",
        },
    }
    if refund.succeeded_at is not None:
        data["success_time"] = rfc3339(refund.succeeded_at)
    return data


@bp.post("/refund/domestic/refunds")
def create_refund() -> Response:
    """Accepted as PROCESSING; SUCCESS after SANDBOX_REFUND_SECONDS (scaled), then notified."""
    sandbox = current()
    data = _body()
    out_refund_no = str(data.get("out_refund_no") or "")
    if not OUT_REFUND_NO.match(out_refund_no):
        raise V3Error(400, "PARAM_ERROR", "out_refund_no格式错误")
    raw_amount = data.get("amount")
    amount: dict[str, Any] = raw_amount if isinstance(raw_amount, dict) else {}
    refund_fen = _positive_int(amount.get("refund"), "amount.refund")
    total_fen = _positive_int(amount.get("total"), "amount.total")
    if not data.get("transaction_id") and not data.get("out_trade_no"):
        raise V3Error(400, "PARAM_ERROR", "transaction_id和out_trade_no必须二选一")
    with sandbox.store.lock:
        if data.get("transaction_id"):
            order = sandbox.store.find_by_transaction("wechat", str(data["transaction_id"]))
        else:
            order = sandbox.store.get("wechat", str(data["out_trade_no"]))
        if order is None:
            raise V3Error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if order.state != PAID:
            raise V3Error(400, "INVALID_REQUEST", "订单未支付，不能退款")
        if total_fen != order.amount_fen:
            raise V3Error(400, "PARAM_ERROR", "订单金额total与实际不符")
        existing = sandbox.store.find_refund("wechat", out_refund_no)
        if existing is not None:
            if existing[0] is not order or existing[1].amount_fen != refund_fen:
                raise V3Error(400, "INVALID_REQUEST", "退款单号重复且参数不一致")
            return _json(refund_json(order, existing[1]))
        if refund_fen > order.amount_fen - order.refunded_fen:
            raise V3Error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        new = Refund(
            out_refund_no=out_refund_no,
            refund_id=ids.wechat_refund_id(),
            amount_fen=refund_fen,
            created_at=sandbox.clock.now(),
            notify_url=str(data.get("notify_url") or "") or None,
            reason=str(data.get("reason") or ""),
            api="v3",
        )
        order.refunds[out_refund_no] = new
        response = _json(refund_json(order, new))
    payments.schedule_refund_settlement(sandbox, order, new)
    return response


@bp.get("/refund/domestic/refunds/<out_refund_no>")
def query_refund(out_refund_no: str) -> Response:
    sandbox = current()
    with sandbox.store.lock:
        found = sandbox.store.find_refund("wechat", out_refund_no)
        if found is None:
            raise V3Error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return _json(refund_json(*found))


# Bills -----------------------------------------------------------------------------------------


@bp.get("/bill/tradebill")
def tradebill() -> Response:
    """`download_url` on the sandbox's own base URL (wechatpayv3 strips its gateway prefix,
    §2.7) plus the SHA1 of the uncompressed bill. Leniency: today's bill is served too."""
    sandbox = current()
    try:
        day = date.fromisoformat(request.args.get("bill_date", ""))
    except ValueError:
        raise V3Error(400, "PARAM_ERROR", "bill_date格式须为YYYY-MM-DD") from None
    bill_type = request.args.get("bill_type", "ALL")
    if bill_type not in ("ALL", "SUCCESS", "REFUND"):
        raise V3Error(400, "PARAM_ERROR", "bill_type参数错误")
    text = bills.wechat_bill(sandbox, day, bill_type)
    if text is None:
        raise V3Error(400, "NO_STATEMENT_EXIST", "The bill does not exist")
    raw = text.encode("utf-8")
    gzipped = request.args.get("tar_type") == "GZIP"
    content = gzip.compress(raw, mtime=0) if gzipped else raw
    token = secrets.token_urlsafe(24)
    with sandbox.store.lock:
        sandbox.store.bill_files[token] = BillFile(
            content=content,
            content_type="application/octet-stream",
            filename=f"tradebill_{day:%Y%m%d}.csv" + (".gz" if gzipped else ""),
            expires=None,
        )
    return _json(
        {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(raw).hexdigest(),  # noqa: S324 - the vendor's digest
            "download_url": f"{sandbox.settings.base_url}/v3/billdownload/file?token={token}",
        }
    )


@bp.get("/billdownload/file")
def billdownload() -> Response:
    bill = current().store.bill_files.get(request.args.get("token", ""))
    if bill is None:
        raise V3Error(400, "PARAM_ERROR", "token无效或已过期")
    return Response(bill.content, content_type=bill.content_type)
