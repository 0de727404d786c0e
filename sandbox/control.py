"""JSON control endpoints for tests, the CLI and developers (like `stripe trigger`).

- `POST /sandbox/control/pay` `{"channel", "out_trade_no", "faults": [...]}`: pay as the
  resident would (the same path as the payer page's 确认支付).
- `POST /sandbox/control/faults` `{"faults": [...], "out_trade_no"?: str, "clear"?: bool}`;
  `GET` the faults in force.
- `POST /sandbox/control/reset`: forget everything.
- `GET /sandbox/control/orders/{channel}/{out_trade_no}` and `GET /sandbox/control/orders`.
- `POST /sandbox/control/refund-notify` `{"channel", "out_trade_no", "out_refund_no"}`:
  send a refund's notification again (with the faults in force).
- `GET /sandbox/{wechat|alipay}/notifications[?out_trade_no=]`: every attempt.
- `POST /sandbox/control/wait-idle` `{"timeout": s}`: block until no delivery is running.
- `GET /sandbox/control/settings`: the public settings (ids, time scale, base URL).
- `POST /sandbox/control/payment-notify` `{"channel", "out_trade_no"}`: send a paid order's
  notification (late, e.g. after a `drop`), with the order's faults in force.
- `POST /sandbox/control/unknown-trade` `{"channel", "amount_fen"?}`: a paid trade the
  merchant never created (a bill fault: it shows on the bill and in the query only).
- `GET /sandbox/control/bill/{wechat|alipay}?date=YYYY-MM-DD[&type=ALL]`: the bill file as
  the vendor would serve it (no signing needed; for the CLI and developers).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from sandbox import bills, ids, payments
from sandbox.context import current
from sandbox.faults import FaultError, parse_faults
from sandbox.store import CHANNELS, PAID, Order

bp = Blueprint("control", __name__, url_prefix="/sandbox")


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _problem(status: int, code: str, message: str) -> ResponseReturnValue:
    return jsonify({"code": code, "message": message}), status


@bp.post("/control/pay")
def pay() -> ResponseReturnValue:
    body = _body()
    channel, out_trade_no = body.get("channel"), body.get("out_trade_no")
    if channel not in CHANNELS or not isinstance(out_trade_no, str):
        return _problem(400, "PARAM_ERROR", "channel (wechat|alipay) and out_trade_no required")
    try:
        faults = parse_faults(body.get("faults") or [])
    except FaultError as exc:
        return _problem(400, "UNKNOWN_FAULT", str(exc))
    try:
        result = payments.pay(current(), channel, out_trade_no, faults)
    except payments.PaymentRefused as refused:
        return _problem(
            409 if refused.code != "ORDERNOTEXIST" else 404, refused.code, refused.message
        )
    return jsonify({"order": result.order.to_json(), "faults": result.faults})


@bp.get("/control/faults")
def get_faults() -> ResponseReturnValue:
    return jsonify(current().store.faults_json())


@bp.post("/control/faults")
def set_faults() -> ResponseReturnValue:
    body = _body()
    store = current().store
    out_trade_no = body.get("out_trade_no") or None
    if body.get("clear"):
        if out_trade_no:
            store.set_faults([], out_trade_no)
        else:
            with store.lock:
                store.global_faults.clear()
                store.order_faults.clear()
        return jsonify(store.faults_json())
    try:
        faults = parse_faults(body.get("faults") or [])
    except FaultError as exc:
        return _problem(400, "UNKNOWN_FAULT", str(exc))
    store.set_faults(faults, out_trade_no)
    return jsonify(store.faults_json())


@bp.post("/control/reset")
def reset() -> ResponseReturnValue:
    current().reset()
    return jsonify({"reset": True})


@bp.get("/control/orders")
def list_orders() -> ResponseReturnValue:
    store = current().store
    with store.lock:
        return jsonify([o.to_json() for o in store.orders.values()])


@bp.get("/control/orders/<channel>/<out_trade_no>")
def get_order(channel: str, out_trade_no: str) -> ResponseReturnValue:
    store = current().store
    with store.lock:
        order = store.get(channel, out_trade_no)
        if order is None:
            return _problem(404, "ORDERNOTEXIST", "no such order")
        return jsonify(order.to_json())


@bp.post("/control/refund-notify")
def refund_notify() -> ResponseReturnValue:
    body = _body()
    sandbox = current()
    found = sandbox.store.find_refund(str(body.get("channel")), str(body.get("out_refund_no")))
    if found is None:
        return _problem(404, "REFUNDNOTEXIST", "no such refund")
    order, refund = found
    if refund.status != "SUCCESS":
        payments.settle_refund(sandbox, order, refund)
    else:
        payments.notify_refund(sandbox, order, refund)
    return jsonify(order.to_json())


@bp.get("/<channel>/notifications")
def notifications(channel: str) -> ResponseReturnValue:
    if channel not in CHANNELS:
        return _problem(404, "NOT_FOUND", "channel is wechat or alipay")
    log = current().store.notification_log(channel, request.args.get("out_trade_no"))
    return jsonify(log)


@bp.post("/control/wait-idle")
def wait_idle() -> ResponseReturnValue:
    timeout = float(_body().get("timeout") or 10)
    return jsonify({"idle": current().notifier.wait_idle(min(timeout, 300))})


@bp.get("/control/settings")
def settings() -> ResponseReturnValue:
    s = current().settings
    return jsonify(
        {
            "base_url": s.base_url,
            "time_scale": current().clock.time_scale,
            "today": current().clock.today().isoformat(),
            "wechat": {"appid": s.WECHAT_APPID, "mch_id": s.WECHAT_MCH_ID},
            "wechat_v3": {"public_key_id": s.WECHAT_PAY_PUBLIC_KEY_ID},
            "alipay": {"app_id": s.ALIPAY_APPID, "seller_id": s.ALIPAY_SELLER_ID},
        }
    )


@bp.post("/control/payment-notify")
def payment_notify() -> ResponseReturnValue:
    body = _body()
    order = current().store.get(str(body.get("channel")), str(body.get("out_trade_no")))
    if order is None:
        return _problem(404, "ORDERNOTEXIST", "订单不存在")
    try:
        payments.notify_payment(current(), order)
    except payments.PaymentRefused as exc:
        return _problem(409, exc.code, exc.message)
    return jsonify({"order": order.to_json()})


@bp.post("/control/unknown-trade")
def unknown_trade() -> ResponseReturnValue:
    """A paid trade under an out_trade_no the merchant never issued (no notification)."""
    sandbox = current()
    body = _body()
    channel = body.get("channel")
    amount = body.get("amount_fen", 100)
    if channel not in CHANNELS:
        return _problem(400, "PARAM_ERROR", "channel is wechat or alipay")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return _problem(400, "PARAM_ERROR", "amount_fen is a positive integer")
    s = sandbox.settings
    now = sandbox.clock.now()
    wechat = channel == "wechat"
    order = Order(
        channel=channel,
        api="v2" if wechat else "alipay",
        out_trade_no="EXT" + ids.nonce(20).upper(),
        amount_fen=amount,
        description="不明来款",
        app_id=s.WECHAT_APPID if wechat else s.ALIPAY_APPID,
        merchant_id=s.WECHAT_MCH_ID if wechat else s.ALIPAY_SELLER_ID,
        created_at=now,
        state=PAID,
        paid_at=now,
        transaction_id=ids.wechat_transaction_id(now) if wechat else ids.alipay_trade_no(now),
    )
    sandbox.store.put(order)
    return jsonify({"order": order.to_json()})


@bp.get("/control/bill/<channel>")
def bill(channel: str) -> ResponseReturnValue:
    sandbox = current()
    raw_date = request.args.get("date") or sandbox.clock.today().isoformat()
    if channel == "wechat":
        try:
            day = date.fromisoformat(raw_date)
        except ValueError:
            return _problem(400, "PARAM_ERROR", "date is YYYY-MM-DD")
        text = bills.wechat_bill(sandbox, day, request.args.get("type") or "ALL")
        if text is None:
            return _problem(404, "NO_BILL_EXIST", "No Bill Exist")
        return Response(text.encode("utf-8"), content_type="text/plain; charset=utf-8")
    if channel == "alipay":
        try:
            built = bills.alipay_bill_zip(sandbox, raw_date)
        except ValueError:
            return _problem(400, "PARAM_ERROR", "date is YYYY-MM-DD or YYYY-MM")
        if built is None:
            return _problem(404, "NO_BILL_EXIST", "账单不存在")
        name, content = built
        return Response(
            content,
            content_type="application/zip",
            headers={"Content-Disposition": f"attachment; filename={name}"},
        )
    return _problem(404, "NOT_FOUND", "channel is wechat or alipay")
