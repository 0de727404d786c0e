"""WeChat Pay API v2 (XML) endpoints: unifiedorder, orderquery, closeorder, refund,
refundquery, downloadbill and the old sandbox's getsignkey (PROTOCOLS.md §1).

Requests are checked the way WeChat checks them: XML, appid/mch_id, signature with the
declared sign_type (§1.2), required fields and formats (§1.3), out_trade_no uniqueness.
Replies are WeChat's XML: `return_code` FAIL for failures before the business logic ran
(unsigned), `result_code` FAIL + `err_code` for business failures (signed), SUCCESS signed.
Everything is also served under `/sandboxnew/`, signed with the sandbox sign key (§1.10).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, request

from sandbox import bills, crypto, ids, payments
from sandbox.clock import BEIJING, COMPACT, compact, dashed
from sandbox.context import Sandbox, current
from sandbox.store import CLOSED, OPEN, PAID, Order, Refund
from sandbox.wechat_v2_wire import BadXML, fail, parse, render, signed

bp = Blueprint("wechat_v2", __name__)

OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
POSITIVE_FEN = re.compile(r"^[1-9][0-9]{0,9}$")
TRADE_TYPES = ("JSAPI", "NATIVE", "APP", "MWEB")
PREPAY_VALIDITY = timedelta(hours=2)  # §1.3
XML_TYPE = "text/xml; charset=utf-8"


def sandbox_sign_key(api_key: str) -> str:
    """The key `sandboxnew/pay/getsignkey` hands out; derived so it is stable (§1.10)."""
    return hashlib.md5(f"sandboxnew|{api_key}".encode()).hexdigest()  # noqa: S324


class Refusal(Exception):
    """A reply that ends the request early (already rendered)."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


@dataclass
class Call:
    """One authenticated v2 request: its fields, the key and algorithm to answer with."""

    sandbox: Sandbox
    fields: dict[str, str]
    key: str
    sign_type: str

    def reply(self, **fields: Any) -> Response:
        """A signed SUCCESS reply (return_code SUCCESS, result_code SUCCESS)."""
        s = self.sandbox.settings
        body = {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "appid": self.fields.get("appid") or s.WECHAT_APPID,
            "mch_id": s.WECHAT_MCH_ID,
            "result_code": "SUCCESS",
            **fields,
        }
        return _xml(render(signed(body, self.key, self.sign_type)))

    def error(self, err_code: str, message: str) -> Response:
        """A signed business failure (return_code SUCCESS, result_code FAIL, err_code)."""
        s = self.sandbox.settings
        body = {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "appid": self.fields.get("appid") or s.WECHAT_APPID,
            "mch_id": s.WECHAT_MCH_ID,
            "result_code": "FAIL",
            "err_code": err_code,
            "err_code_des": message,
        }
        return _xml(render(signed(body, self.key, self.sign_type)))

    def require(self, *names: str) -> None:
        for name in names:
            if not self.fields.get(name):
                raise Refusal(self.error("PARAM_ERROR", f"缺少参数{name}"))


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, content_type=XML_TYPE)


def _authenticate(sandboxnew: bool, *, needs_appid: bool = True) -> Call:
    """Parse and authenticate the XML body, as WeChat does before any business logic."""
    sandbox = current()
    s = sandbox.settings
    try:
        fields = parse(request.get_data(cache=True))
    except BadXML:
        raise Refusal(_xml(fail("XML格式错误"))) from None
    for name in ("mch_id", "nonce_str", "sign") + (("appid",) if needs_appid else ()):
        if not fields.get(name):
            raise Refusal(_xml(fail(f"{name}参数缺失" if name != "sign" else "缺少签名")))
    if fields["mch_id"] != s.WECHAT_MCH_ID:
        raise Refusal(_xml(fail("商户号mch_id与appid不匹配", "APPID_MCHID_NOT_MATCH")))
    key = sandbox_sign_key(s.WECHAT_API_KEY) if sandboxnew else s.WECHAT_API_KEY
    if not crypto.v2_check(fields, key):
        raise Refusal(_xml(fail("签名错误", "SIGNERROR")))
    sign_type = fields.get("sign_type") or crypto.MD5
    call = Call(sandbox, fields, key, sign_type)
    if needs_appid and fields["appid"] != s.WECHAT_APPID:
        raise Refusal(call.error("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"))
    return call


def _endpoint(
    path: str, *, needs_appid: bool = True
) -> Callable[[Callable[[Call], Response]], Callable[[Call], Response]]:
    """Register a handler at `/path` and `/sandboxnew/path`, with the authentication step."""

    def register(handler: Callable[[Call], Response]) -> Callable[[Call], Response]:
        def view(sandboxnew: bool) -> Response:
            try:
                return handler(_authenticate(sandboxnew, needs_appid=needs_appid))
            except Refusal as refusal:
                return refusal.response

        bp.add_url_rule(f"/{path}", f"{handler.__name__}", lambda: view(False), methods=["POST"])
        bp.add_url_rule(
            f"/sandboxnew/{path}",
            f"{handler.__name__}_sandboxnew",
            lambda: view(True),
            methods=["POST"],
        )
        return handler

    return register


def _server_error() -> Response:
    """The `prepay_5xx` / `query_5xx` faults: an HTTP 500 with WeChat's SYSTEMERROR."""
    return _xml(fail("系统繁忙,请稍后再试", "SYSTEMERROR"), status=500)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, COMPACT).replace(tzinfo=BEIJING)
    except ValueError:
        return None


# Unified order ---------------------------------------------------------------------------------


def _check_unified(call: Call) -> None:
    """Field rules of §1.3 (PARAM_ERROR when broken)."""
    f = call.fields
    call.require("body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url")
    call.require("trade_type")
    if not OUT_TRADE_NO.match(f["out_trade_no"]):
        raise Refusal(call.error("PARAM_ERROR", "out_trade_no须为6-32位数字、字母或_-|*"))
    if not POSITIVE_FEN.match(f["total_fee"]):
        raise Refusal(call.error("PARAM_ERROR", "total_fee须为正整数(分)"))
    if f["trade_type"] not in TRADE_TYPES:
        raise Refusal(call.error("PARAM_ERROR", "trade_type参数错误"))
    if f["trade_type"] == "JSAPI" and not f.get("openid"):
        raise Refusal(call.error("PARAM_ERROR", "trade_type=JSAPI时，openid为必填参数"))
    url = f["notify_url"]
    if not re.match(r"^https?://[^\s?#]+$", url) or len(url) > 256:
        raise Refusal(call.error("PARAM_ERROR", "notify_url须为不带参数的完整URL"))
    if len(f["body"]) > 127:
        raise Refusal(call.error("PARAM_ERROR", "body长度超过限制"))
    if f.get("sign_type") not in (None, "", crypto.MD5, crypto.HMAC_SHA256):
        raise Refusal(call.error("PARAM_ERROR", "sign_type参数错误"))


@_endpoint("pay/unifiedorder")
def unifiedorder(call: Call) -> Response:
    sandbox, f = call.sandbox, call.fields
    _check_unified(call)
    out_trade_no = f["out_trade_no"]
    faults = sandbox.faults(out_trade_no)
    if faults.has("prepay_5xx"):
        return _server_error()
    fingerprint = (f["appid"], f["total_fee"], f["body"], f.get("openid"), f["trade_type"])
    now = sandbox.clock.now()
    with sandbox.store.lock:
        order = sandbox.store.get("wechat", out_trade_no)
        if order is not None:
            if order.state == PAID:
                return call.error("ORDERPAID", "该订单已支付")
            if order.state == CLOSED:
                return call.error("ORDERCLOSED", "该订单已关闭")
            if order.fingerprint != fingerprint or order.api != "v2":
                return call.error("OUT_TRADE_NO_USED", "商户订单号重复")
            # Same order again within the prepay validity: WeChat answers the same prepay_id.
            if order.prepay_id is None or now - order.created_at > PREPAY_VALIDITY:
                order.prepay_id = ids.wechat_prepay_id(now)
        else:
            expires = _parse_time(f.get("time_expire"))
            order = Order(
                channel="wechat",
                api="v2",
                out_trade_no=out_trade_no,
                amount_fen=int(f["total_fee"]),
                description=f["body"],
                app_id=f["appid"],
                merchant_id=f["mch_id"],
                created_at=now,
                notify_url=f["notify_url"],
                payer_id=f.get("openid"),
                attach=f.get("attach"),
                trade_type=f["trade_type"],
                fingerprint=fingerprint,
                expires_at=expires,
                prepay_id=ids.wechat_prepay_id(now),
                sign_type=call.sign_type,
                sign_key=call.key,
            )
            sandbox.store.put(order)
    page = payments.pay_url(sandbox, "wechat", out_trade_no)
    extra = {"code_url": page} if f["trade_type"] == "NATIVE" else {}
    if f["trade_type"] == "MWEB":
        extra = {"mweb_url": page}
    response = call.reply(
        trade_type=f["trade_type"], prepay_id=order.prepay_id, pay_url=page, **extra
    )
    if faults.has("timeout"):
        sandbox.hang(faults.argument("timeout", sandbox.settings.SANDBOX_HANG_SECONDS) or 0)
    return response


# Query and close -------------------------------------------------------------------------------


def trade_fields(order: Order) -> dict[str, Any]:
    """The order as orderquery shows it (§1.6)."""
    state = order.wechat_trade_state
    fields: dict[str, Any] = {
        "device_info": "",
        "openid": order.payer_id,
        "is_subscribe": "N",
        "trade_type": order.trade_type,
        "trade_state": state,
        "total_fee": order.amount_fen,
        "fee_type": "CNY",
        "out_trade_no": order.out_trade_no,
        "attach": order.attach,
        "trade_state_desc": {
            "SUCCESS": "支付成功",
            "REFUND": "转入退款",
            "NOTPAY": "订单未支付",
            "CLOSED": "订单已关闭",
        }[state],
    }
    if order.state == PAID and order.paid_at is not None:
        fields.update(
            bank_type="OTHERS",
            cash_fee=order.amount_fen,
            transaction_id=order.transaction_id,
            time_end=compact(order.paid_at),
        )
    return fields


@_endpoint("pay/orderquery")
def orderquery(call: Call) -> Response:
    sandbox, f = call.sandbox, call.fields
    if not f.get("transaction_id") and not f.get("out_trade_no"):
        return call.error("PARAM_ERROR", "transaction_id和out_trade_no至少填一个")
    if f.get("transaction_id"):  # takes priority (§1.6)
        order = sandbox.store.find_by_transaction("wechat", f["transaction_id"])
    else:
        order = sandbox.store.get("wechat", f["out_trade_no"])
    faults = sandbox.faults(order.out_trade_no if order else f.get("out_trade_no"))
    if faults.has("query_5xx"):
        return _server_error()
    if order is None:
        return call.error("ORDERNOTEXIST", "订单不存在")
    with sandbox.store.lock:
        response = call.reply(**trade_fields(order))
    if faults.has("timeout"):
        sandbox.hang(faults.argument("timeout", sandbox.settings.SANDBOX_HANG_SECONDS) or 0)
    return response


@_endpoint("pay/closeorder")
def closeorder(call: Call) -> Response:
    sandbox = call.sandbox
    call.require("out_trade_no")
    with sandbox.store.lock:
        order = sandbox.store.get("wechat", call.fields["out_trade_no"])
        if order is None:
            return call.error("ORDERNOTEXIST", "订单不存在")
        if order.state == PAID:
            return call.error("ORDERPAID", "订单已支付，不能发起关单")
        if order.state == CLOSED:
            return call.error("ORDERCLOSED", "订单已关闭，无法重复关闭")
        order.state = CLOSED
        order.closed_at = sandbox.clock.now()
    return call.reply()


# Refunds ---------------------------------------------------------------------------------------


@_endpoint("secapi/pay/refund")
def refund(call: Call) -> Response:
    """§1.7. Over plain http the client certificate cannot be checked; it is not required."""
    sandbox, f = call.sandbox, call.fields
    call.require("out_refund_no", "total_fee", "refund_fee")
    if not f.get("transaction_id") and not f.get("out_trade_no"):
        return call.error("PARAM_ERROR", "transaction_id和out_trade_no至少填一个")
    if not OUT_REFUND_NO.match(f["out_refund_no"]):
        return call.error("PARAM_ERROR", "out_refund_no格式错误")
    if not POSITIVE_FEN.match(f["total_fee"]) or not POSITIVE_FEN.match(f["refund_fee"]):
        return call.error("PARAM_ERROR", "total_fee和refund_fee须为正整数(分)")
    total, amount = int(f["total_fee"]), int(f["refund_fee"])
    with sandbox.store.lock:
        if f.get("transaction_id"):
            order = sandbox.store.find_by_transaction("wechat", f["transaction_id"])
        else:
            order = sandbox.store.get("wechat", f["out_trade_no"])
        if order is None:
            return call.error("ORDERNOTEXIST", "订单不存在")
        if order.state != PAID:
            return call.error("ERROR", "订单状态错误，未支付订单不能退款")
        if total != order.amount_fen:
            return call.error("PARAM_ERROR", "订单金额total_fee与实际不符")
        existing = sandbox.store.find_refund("wechat", f["out_refund_no"])
        if existing is not None:
            # The same out_refund_no refunds once (§1.7): a resend answers the same refund.
            same_order, found = existing
            if same_order is not order or found.amount_fen != amount:
                return call.error("PARAM_ERROR", "退款单号重复且参数不一致")
            return call.reply(**_refund_reply(order, found))
        if amount > order.amount_fen - order.refunded_fen:
            return call.error("ERROR", "申请退款金额超过订单可退金额")
        new = Refund(
            out_refund_no=f["out_refund_no"],
            refund_id=ids.wechat_refund_id(),
            amount_fen=amount,
            created_at=sandbox.clock.now(),
            notify_url=f.get("notify_url") or None,
            reason=f.get("refund_desc", ""),
            api="v2",
        )
        order.refunds[new.out_refund_no] = new
    payments.schedule_refund_settlement(sandbox, order, new)
    return call.reply(**_refund_reply(order, new))


def _refund_reply(order: Order, refund: Refund) -> dict[str, Any]:
    return {
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_channel": "",
        "refund_fee": refund.amount_fen,
        "coupon_refund_fee": 0,
        "total_fee": order.amount_fen,
        "cash_fee": order.amount_fen,
        "cash_refund_fee": refund.amount_fen,
    }


@_endpoint("pay/refundquery")
def refundquery(call: Call) -> Response:
    """Priority refund_id > out_refund_no > transaction_id > out_trade_no (§1.7)."""
    sandbox, f = call.sandbox, call.fields
    with sandbox.store.lock:
        order: Order | None = None
        chosen: list[Refund] = []
        if f.get("refund_id") or f.get("out_refund_no"):
            for candidate in sandbox.store.orders_of("wechat"):
                for r in candidate.refunds.values():
                    if (f.get("refund_id") and r.refund_id == f["refund_id"]) or (
                        not f.get("refund_id") and r.out_refund_no == f.get("out_refund_no")
                    ):
                        order, chosen = candidate, [r]
        elif f.get("transaction_id"):
            order = sandbox.store.find_by_transaction("wechat", f["transaction_id"])
        elif f.get("out_trade_no"):
            order = sandbox.store.get("wechat", f["out_trade_no"])
        else:
            return call.error("PARAM_ERROR", "四个单号至少填一个")
        if order is not None and not chosen:
            chosen = list(order.refunds.values())
        if order is None or not chosen:
            return call.error("REFUNDNOTEXIST", "退款订单查询失败")
        fields: dict[str, Any] = {
            "transaction_id": order.transaction_id,
            "out_trade_no": order.out_trade_no,
            "total_fee": order.amount_fen,
            "cash_fee": order.amount_fen,
            "refund_fee": sum(r.amount_fen for r in chosen),
            "refund_count": len(chosen),
        }
        for n, r in enumerate(chosen):
            fields.update(
                {
                    f"out_refund_no_{n}": r.out_refund_no,
                    f"refund_id_{n}": r.refund_id,
                    f"refund_channel_{n}": "ORIGINAL",
                    f"refund_fee_{n}": r.amount_fen,
                    f"refund_status_{n}": r.status,
                    f"refund_account_{n}": "REFUND_SOURCE_UNSETTLED_FUNDS",
                    f"refund_recv_accout_{n}": "支付用户零钱",
                    f"refund_success_time_{n}": dashed(r.succeeded_at) if r.succeeded_at else "",
                }
            )
        return call.reply(**fields)


# Bills and the old sandbox key -----------------------------------------------------------------


@_endpoint("pay/downloadbill")
def downloadbill(call: Call) -> Response:
    """§1.9. Leniency: the real gateway serves yesterday's bill from 09:00 on; the sandbox
    serves any date, today included, from what it has seen so far."""
    sandbox, f = call.sandbox, call.fields
    call.require("bill_date")
    bill_type = f.get("bill_type") or "ALL"
    if bill_type not in ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND"):
        return _xml(fail("invalid bill_type"))
    try:
        day = datetime.strptime(f["bill_date"], "%Y%m%d").replace(tzinfo=BEIJING).date()
    except ValueError:
        return _xml(fail("invalid bill_date"))
    text = bills.wechat_bill(sandbox, day, bill_type)
    if text is None:
        return _xml(
            render({"return_code": "FAIL", "return_msg": "No Bill Exist", "error_code": "20002"})
        )
    return Response(text.encode("utf-8"), content_type="text/plain; charset=utf-8")


@bp.post("/sandboxnew/pay/getsignkey")
def getsignkey() -> Response:
    """§1.10: mch_id + nonce_str signed (MD5) with the real key → the sandbox sign key."""
    sandbox = current()
    s = sandbox.settings
    try:
        fields = parse(request.get_data(cache=True))
    except BadXML:
        return _xml(fail("XML格式错误"))
    if fields.get("mch_id") != s.WECHAT_MCH_ID or not crypto.v2_check(fields, s.WECHAT_API_KEY):
        return _xml(fail("签名错误", "SIGNERROR"))
    return _xml(
        render(
            {
                "return_code": "SUCCESS",
                "return_msg": "ok",
                "mch_id": s.WECHAT_MCH_ID,
                "sandbox_signkey": sandbox_sign_key(s.WECHAT_API_KEY),
            }
        )
    )


__all__ = ["OPEN", "bp", "sandbox_sign_key", "trade_fields"]
