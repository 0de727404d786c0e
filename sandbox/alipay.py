"""Alipay `gateway.do` (GET and POST, PROTOCOLS.md §5): trade create / precreate / wap.pay /
query / close / refund / fastpay.refund.query, system.oauth.token and the bill URL query.

Every call is authenticated first (app_id, RSA2 signature over §5.3's string with the app
public key); auth failures are answered unsigned (the SDK raises `AliPayException`), business
answers are signed over the exact inner JSON text (§5.4), including 40004 failures, which the
SDK returns as a normal dict (§0.7).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, request

from sandbox import bills, crypto, ids, payments
from sandbox.alipay_wire import (
    BadAmount,
    business_error,
    fen_to_yuan,
    invalid_arguments,
    missing_arguments,
    signed_reply,
    success,
    verify_request,
    yuan_to_fen,
)
from sandbox.clock import BEIJING, DASHED, dashed
from sandbox.context import Sandbox, current
from sandbox.store import CLOSED, OPEN, PAID, BillFile, Order, Refund

bp = Blueprint("alipay", __name__)

OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*.]{1,64}$")
REDIRECT_METHODS = ("alipay.trade.wap.pay", "alipay.trade.page.pay")
DEFAULT_BUYER = payments.DEFAULT_BUYER


@dataclass
class Call:
    """One authenticated gateway call."""

    sandbox: Sandbox
    method: str
    params: dict[str, str]
    biz: dict[str, Any]


def _json(body: bytes) -> Response:
    return Response(body, content_type="application/json;charset=utf-8")


def _reply(call: Call, inner: dict[str, Any]) -> Response:
    key = crypto.load_private_key(call.sandbox.settings.key_path("alipay_private_key.pem"))
    return _json(signed_reply(call.method, inner, key))


def _params() -> dict[str, str]:
    """Query and form merged (the SDK uses GET, Alipay's docs show POST form, §5.7)."""
    params = {k: v for k, v in request.args.items()}
    params.update({k: v for k, v in request.form.items()})
    return params


def _authenticate(params: dict[str, str]) -> tuple[Call | None, Response | None]:
    sandbox = current()
    s = sandbox.settings
    method = params.get("method", "")
    if not method:
        return None, _json(
            signed_reply(None, missing_arguments("isv.missing-method", "缺少方法名参数"), None)
        )
    if params.get("app_id") != s.ALIPAY_APPID:
        return None, _json(
            signed_reply(method, invalid_arguments("isv.invalid-app-id", "无效的AppID参数"), None)
        )
    if not params.get("sign"):
        return None, _json(
            signed_reply(method, missing_arguments("isv.missing-signature", "缺少签名参数"), None)
        )
    if params.get("sign_type", "RSA2") != "RSA2":
        return None, _json(
            signed_reply(
                method, invalid_arguments("isv.invalid-signature-type", "无效的签名类型"), None
            )
        )
    if (params.get("charset") or "utf-8").lower() not in ("utf-8", "utf8"):
        return None, _json(
            signed_reply(method, invalid_arguments("isv.invalid-charset", "字符集错误"), None)
        )
    public_key = crypto.load_public_key(s.key_path("alipay_app_public_key.pem"))
    if not verify_request(params, public_key):
        return None, _json(
            signed_reply(
                method,
                invalid_arguments(
                    "isv.invalid-signature",
                    "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配",
                ),
                None,
            )
        )
    try:
        biz = json.loads(params.get("biz_content") or "{}", parse_float=Decimal)
    except ValueError:
        biz = None
    call = Call(sandbox, method, params, biz if isinstance(biz, dict) else {})
    if not isinstance(biz, dict):
        return None, _reply(
            call, invalid_arguments("isv.invalid-biz-content", "biz_content格式错误")
        )
    return call, None


HANDLERS: dict[str, Callable[[Call], Response]] = {}


def handles(method: str) -> Callable[[Callable[[Call], Response]], Callable[[Call], Response]]:
    def register(fn: Callable[[Call], Response]) -> Callable[[Call], Response]:
        HANDLERS[method] = fn
        return fn

    return register


@bp.route("/gateway.do", methods=["GET", "POST"])
def gateway() -> Response:
    params = _params()
    method = params.get("method", "")
    call, refusal = _authenticate(params)
    if refusal is not None:
        if method in REDIRECT_METHODS:  # a browser: Alipay shows an error page
            return Response(
                "<!doctype html><meta charset='utf-8'><h1>支付宝沙箱：请求错误</h1><pre>"
                + refusal.get_data(as_text=True)
                + "</pre>",
                status=400,
                content_type="text/html; charset=utf-8",
            )
        return refusal
    assert call is not None
    handler = HANDLERS.get(method)
    if handler is None:
        return _json(
            signed_reply(method, invalid_arguments("isv.invalid-method", "不存在的方法名"), None)
        )
    return handler(call)


# Orders -----------------------------------------------------------------------------------------


def _expiry(biz: dict[str, Any], now: datetime) -> datetime | None:
    """`time_expire` (yyyy-MM-dd HH:mm:ss) or `timeout_express` (30m, 2h, 1d, 1c) (§5.6)."""
    if biz.get("time_expire"):
        try:
            return datetime.strptime(str(biz["time_expire"]), DASHED).replace(tzinfo=BEIJING)
        except ValueError:
            return None
    match = re.fullmatch(r"(\d+)([mhdc])", str(biz.get("timeout_express") or ""))
    if not match:
        return None
    value, unit = int(match.group(1)), match.group(2)
    if unit == "c":  # until the end of the day
        return now.replace(hour=23, minute=59, second=59)
    minutes = {"m": 1, "h": 60, "d": 1440}[unit]
    return now + timedelta(minutes=value * minutes)


def _create(call: Call, trade_type: str) -> tuple[Order | None, Response | None]:
    """Common part of create / precreate / wap.pay: validate and create (or find) the order."""
    sandbox, biz = call.sandbox, call.biz
    out_trade_no = str(biz.get("out_trade_no") or "")
    subject = str(biz.get("subject") or "")
    if not out_trade_no or not subject or "total_amount" not in biz:
        return None, _reply(
            call,
            missing_arguments("isv.missing-biz-param", "缺少out_trade_no/subject/total_amount"),
        )
    if not OUT_TRADE_NO.match(out_trade_no):
        return None, _reply(
            call, invalid_arguments("isv.invalid-parameter", "out_trade_no格式错误")
        )
    try:
        amount = yuan_to_fen(biz["total_amount"])
    except BadAmount:
        return None, _reply(
            call,
            invalid_arguments("isv.invalid-parameter", "total_amount须为最多两位小数的正数金额"),
        )
    faults = sandbox.faults(out_trade_no)
    if faults.has("prepay_5xx"):
        return None, Response("Internal Server Error", status=500)
    buyer = str(biz.get("buyer_id") or "") or None
    fingerprint = (amount, subject, buyer, trade_type)
    now = sandbox.clock.now()
    with sandbox.store.lock:
        order = sandbox.store.get("alipay", out_trade_no)
        if order is not None:
            if order.state == PAID:
                return None, _reply(call, business_error("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"))
            if order.state == CLOSED:
                return None, _reply(call, business_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"))
            if order.fingerprint != fingerprint:
                return None, _reply(
                    call, business_error("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
                )
            return order, None
        order = Order(
            channel="alipay",
            api="alipay",
            out_trade_no=out_trade_no,
            amount_fen=amount,
            description=subject,
            app_id=call.params["app_id"],
            merchant_id=sandbox.settings.ALIPAY_SELLER_ID,
            created_at=now,
            notify_url=call.params.get("notify_url") or None,
            payer_id=buyer,
            attach=str(biz.get("passback_params") or "") or None,
            trade_type=trade_type,
            fingerprint=fingerprint,
            expires_at=_expiry(biz, now),
            scanned=trade_type != "precreate",  # a QR trade exists once scanned (§5.6)
            extra={"return_url": call.params.get("return_url") or ""},
        )
        if trade_type == "create":
            order.transaction_id = ids.alipay_trade_no(now)  # create answers trade_no at once
        sandbox.store.put(order)
    return order, None


def _hang_if(call: Call, out_trade_no: str) -> None:
    faults = call.sandbox.faults(out_trade_no)
    if faults.has("timeout"):
        call.sandbox.hang(
            faults.argument("timeout", call.sandbox.settings.SANDBOX_HANG_SECONDS) or 0
        )


@handles("alipay.trade.precreate")
def precreate(call: Call) -> Response:
    """QR code; `qr_code` points at the payer page (scan = open it)."""
    order, refusal = _create(call, "precreate")
    if refusal is not None:
        return refusal
    assert order is not None
    url = payments.pay_url(call.sandbox, "alipay", order.out_trade_no)
    response = _reply(call, success(out_trade_no=order.out_trade_no, qr_code=url))
    _hang_if(call, order.out_trade_no)
    return response


@handles("alipay.trade.create")
def create(call: Call) -> Response:
    """Alipay mini-program trade (needs buyer_id or buyer_open_id, §5.10)."""
    if not call.biz.get("buyer_id") and not call.biz.get("buyer_open_id"):
        return _reply(
            call, invalid_arguments("isv.missing-buyer", "buyer_id和buyer_open_id不能同时为空")
        )
    order, refusal = _create(call, "create")
    if refusal is not None:
        return refusal
    assert order is not None
    response = _reply(call, success(out_trade_no=order.out_trade_no, trade_no=order.transaction_id))
    _hang_if(call, order.out_trade_no)
    return response


@handles("alipay.trade.wap.pay")
@handles("alipay.trade.page.pay")
def wap_pay(call: Call) -> Response:
    """An order-string method: the browser arrives here and is sent to the payer page."""
    order, refusal = _create(call, "wap" if call.method.endswith("wap.pay") else "page")
    if refusal is not None:
        return Response(
            "<!doctype html><meta charset='utf-8'><h1>支付宝沙箱：下单失败</h1><pre>"
            + refusal.get_data(as_text=True)
            + "</pre>",
            status=400,
            content_type="text/html; charset=utf-8",
        )
    assert order is not None
    target = payments.pay_url(call.sandbox, "alipay", order.out_trade_no)
    return Response(status=302, headers={"Location": target})


def _find(call: Call) -> Order | None:
    """By trade_no (priority) or out_trade_no; an unscanned precreate trade does not exist."""
    store = call.sandbox.store
    if call.biz.get("trade_no"):
        order = store.find_by_transaction("alipay", str(call.biz["trade_no"]))
    else:
        order = store.get("alipay", str(call.biz.get("out_trade_no") or ""))
    if order is None or not order.scanned:
        return None
    return order


def _buyer(order: Order, appid: str) -> tuple[str, str]:
    buyer = order.payer_id or ids.alipay_user_id(appid, DEFAULT_BUYER)
    return buyer, order.extra.get("buyer_logon_id") or ids.alipay_logon_id(buyer)


@handles("alipay.trade.query")
def query(call: Call) -> Response:
    if not call.biz.get("trade_no") and not call.biz.get("out_trade_no"):
        return _reply(
            call, missing_arguments("isv.missing-biz-param", "out_trade_no和trade_no不能同时为空")
        )
    out_trade_no = str(call.biz.get("out_trade_no") or "")
    faults = call.sandbox.faults(out_trade_no or None)
    if faults.has("query_5xx"):
        return Response("Internal Server Error", status=500)
    with call.sandbox.store.lock:
        order = _find(call)
        if order is None:
            response = _reply(call, business_error("ACQ.TRADE_NOT_EXIST", "交易不存在"))
        else:
            response = _reply(call, success(**_trade_fields(order, call.params["app_id"])))
    _hang_if(call, out_trade_no)
    return response


def _trade_fields(order: Order, appid: str) -> dict[str, Any]:
    buyer, logon = _buyer(order, appid)
    fields: dict[str, Any] = {
        "out_trade_no": order.out_trade_no,
        "trade_status": order.alipay_trade_status,
        "total_amount": fen_to_yuan(order.amount_fen),
    }
    if order.transaction_id:
        fields["trade_no"] = order.transaction_id
    if order.state == PAID and order.paid_at is not None:
        paid = fen_to_yuan(order.amount_fen)
        fields.update(
            buyer_logon_id=logon,
            buyer_user_id=buyer,
            buyer_pay_amount=paid,
            receipt_amount=paid,
            invoice_amount=paid,
            point_amount="0.00",
            send_pay_date=dashed(order.paid_at),
            fund_bill_list=[{"fund_channel": "ALIPAYACCOUNT", "amount": paid}],
        )
    else:
        fields.update(buyer_pay_amount="0.00", receipt_amount="0.00", point_amount="0.00")
    return fields


@handles("alipay.trade.close")
def close(call: Call) -> Response:
    with call.sandbox.store.lock:
        order = _find(call)
        if order is None:
            return _reply(call, business_error("ACQ.TRADE_NOT_EXIST", "交易不存在"))
        if order.state != OPEN:
            return _reply(call, business_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"))
        order.state = CLOSED
        order.closed_at = call.sandbox.clock.now()
        return _reply(
            call, success(out_trade_no=order.out_trade_no, trade_no=order.transaction_id or "")
        )


# Refunds ----------------------------------------------------------------------------------------


@handles("alipay.trade.refund")
def refund(call: Call) -> Response:
    """§5.6: refunds are synchronous; without out_request_no only the full amount can be
    refunded; the same out_request_no refunds once (fund_change N on a resend)."""
    sandbox, biz = call.sandbox, call.biz
    try:
        amount = yuan_to_fen(biz.get("refund_amount"))
    except BadAmount:
        return _reply(
            call,
            invalid_arguments("isv.invalid-parameter", "refund_amount须为最多两位小数的正数金额"),
        )
    with sandbox.store.lock:
        order = _find(call)
        if order is None:
            return _reply(call, business_error("ACQ.TRADE_NOT_EXIST", "交易不存在"))
        if order.state == PAID and order.refund_success_fen >= order.amount_fen:
            return _reply(call, business_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"))
        if order.state == CLOSED:
            return _reply(call, business_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"))
        if order.state != PAID:
            return _reply(call, business_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"))
        request_no = str(biz.get("out_request_no") or "")
        if not request_no:
            if amount != order.amount_fen:
                return _reply(
                    call, business_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
                )
            request_no = order.out_trade_no  # Alipay uses out_trade_no as the request number
        existing = order.refunds.get(request_no)
        if existing is not None:
            return _reply(call, success(**_refund_fields(order, existing, call, fund_change="N")))
        if amount > order.amount_fen - order.refunded_fen:
            return _reply(call, business_error("ACQ.REFUND_FEE_ERROR", "交易退款金额有误"))
        now = sandbox.clock.now()
        pending = payments.refund_pending(sandbox, order)
        new = Refund(
            out_refund_no=request_no,
            refund_id=request_no,
            amount_fen=amount,
            created_at=now,
            notify_url=order.notify_url,  # Alipay notifies refunds to the order's notify_url
            reason=str(biz.get("refund_reason") or ""),
            api="alipay",
            status="PROCESSING" if pending else "SUCCESS",
            succeeded_at=None if pending else now,
        )
        order.refunds[request_no] = new
        fields = _refund_fields(order, new, call, fund_change="N" if pending else "Y")
        response = _reply(call, success(**fields))
    if not pending:  # a pending refund is notified when the control call settles it
        payments.notify_refund(sandbox, order, new)
    return response


def _refund_fields(order: Order, refund: Refund, call: Call, *, fund_change: str) -> dict[str, Any]:
    buyer, logon = _buyer(order, call.params["app_id"])
    return {
        "trade_no": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "buyer_logon_id": logon,
        "buyer_user_id": buyer,
        "fund_change": fund_change,
        "refund_fee": fen_to_yuan(order.refund_success_fen),  # cumulative (退款总金额)
        "send_back_fee": fen_to_yuan(refund.amount_fen) if fund_change == "Y" else "0.00",
        "gmt_refund_pay": dashed(refund.succeeded_at or refund.created_at),
    }


@handles("alipay.trade.fastpay.refund.query")
def refund_query(call: Call) -> Response:
    """A refund that does not exist answers 10000 without refund fields (Alipay's rule:
    no data = not refunded); one still in progress (the `refund_pending` fault) answers its
    data without `refund_status`, which only REFUND_SUCCESS fills."""
    request_no = str(call.biz.get("out_request_no") or "")
    if not request_no:
        return _reply(call, missing_arguments("isv.missing-biz-param", "缺少out_request_no"))
    with call.sandbox.store.lock:
        order = _find(call)
        if order is None:
            return _reply(call, business_error("ACQ.TRADE_NOT_EXIST", "交易不存在"))
        found = order.refunds.get(request_no)
        if found is None:
            return _reply(call, success())
        fields: dict[str, Any] = {
            "trade_no": order.transaction_id,
            "out_trade_no": order.out_trade_no,
            "out_request_no": found.out_refund_no,
            "total_amount": fen_to_yuan(order.amount_fen),
            "refund_amount": fen_to_yuan(found.amount_fen),
        }
        if found.status == "SUCCESS":
            fields["refund_status"] = "REFUND_SUCCESS"
            # Like the real gateway: the refund's time only when `query_options` asks for it.
            if "gmt_refund_pay" in (call.biz.get("query_options") or ()):
                fields["gmt_refund_pay"] = dashed(found.succeeded_at or found.created_at)
        return _reply(call, success(**fields))


# Login and bills --------------------------------------------------------------------------------


@handles("alipay.system.oauth.token")
def oauth_token(call: Call) -> Response:
    """auth_code → stable `user_id` per code user (`<user>` or `<user>.<nonce>`), single use.
    `grant_type` and `code` are top-level parameters here, not biz_content."""
    code = call.params.get("code", "")
    if call.params.get("grant_type") != "authorization_code" or not code:
        return _json(
            signed_reply(
                None,
                invalid_arguments("isv.invalid-parameter", "grant_type或code无效"),
                crypto.load_private_key(call.sandbox.settings.key_path("alipay_private_key.pem")),
            )
        )
    user = ids.code_user(code)
    if not user or not call.sandbox.store.use_code("alipay", code):
        return _json(
            signed_reply(
                None,
                invalid_arguments("isv.code-invalid", "授权码code无效"),
                crypto.load_private_key(call.sandbox.settings.key_path("alipay_private_key.pem")),
            )
        )
    return _reply(
        call,
        {
            "user_id": ids.alipay_user_id(call.params["app_id"], user),
            "access_token": "authusrB" + secrets.token_hex(16),
            "expires_in": 1296000,
            "refresh_token": "authusrB" + secrets.token_hex(16),
            "re_expires_in": 2592000,
            "auth_start": dashed(call.sandbox.clock.now()),
        },
    )


@handles("alipay.data.dataservice.bill.downloadurl.query")
def bill_url(call: Call) -> Response:
    """§5.8: a URL that expires SANDBOX_BILL_URL_TTL (30 s) after issue. Leniency: today's
    (and this month's) bill is served too, as of now."""
    bill_type, bill_date = call.biz.get("bill_type"), str(call.biz.get("bill_date") or "")
    if bill_type not in ("trade", "signcustomer"):
        return _reply(call, invalid_arguments("isv.invalid-parameter", "bill_type参数不合法"))
    if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", bill_date):
        return _reply(call, invalid_arguments("isv.invalid-parameter", "bill_date参数不合法"))
    try:
        built = bills.alipay_bill_zip(call.sandbox, bill_date)
    except ValueError:
        return _reply(call, invalid_arguments("isv.invalid-parameter", "bill_date参数不合法"))
    if built is None:
        return _reply(call, business_error("isp.bill_not_exist", "账单不存在"))
    filename, content = built
    token = secrets.token_urlsafe(24)
    with call.sandbox.store.lock:
        call.sandbox.store.bill_files[token] = BillFile(
            content=content,
            content_type="application/oct-stream",
            filename=filename,
            expires=time.monotonic() + call.sandbox.settings.SANDBOX_BILL_URL_TTL,
        )
    url = (
        f"{call.sandbox.settings.base_url}/downloadBillFile.resource?bizType={bill_type}"
        f"&fileType=csv.zip&bizDates={bill_date.replace('-', '')}&token={token}"
    )
    return _reply(call, success(bill_download_url=url))


@bp.get("/downloadBillFile.resource")
def download_bill_file() -> Response:
    sandbox = current()
    with sandbox.store.lock:
        bill = sandbox.store.bill_files.get(request.args.get("token", ""))
    if bill is None or (bill.expires is not None and time.monotonic() > bill.expires):
        return Response(
            "下载超时，请重新下载", status=410, content_type="text/plain; charset=utf-8"
        )
    return Response(
        bill.content,
        content_type=bill.content_type,
        headers={"Content-Disposition": f"attachment; filename={bill.filename}"},
    )
