"""What happens when the resident acts: pay or cancel an order, and refunds settling.

Shared by the payer page and the control endpoint so "pay through the page" and "pay through
`POST /sandbox/control/pay`" are the same event. Paying stamps a vendor-shaped transaction id
and hands the notification to the notifier with the faults in force (`sandbox.faults`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sandbox import alipay_notify, ids, wechat_v2_notify, wechat_v3_notify
from sandbox.context import Sandbox
from sandbox.faults import Fault
from sandbox.notifier import Delivery, Tamper, dispatch
from sandbox.store import CLOSED, OPEN, PAID, Order, Refund

#: The Alipay payer of QR and wap orders, whose buyer the merchant does not know in advance.
DEFAULT_BUYER = "sandbox-payer"
#: What the `overcharge` fault takes above the order's amount.
OVERCHARGE_FEN = 100


class PaymentRefused(Exception):
    """The order cannot be paid (unknown, closed, expired or already paid)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PayResult:
    order: Order
    faults: list[str]


def _payment_delivery(sandbox: Sandbox, order: Order, tamper: Tamper) -> Delivery | None:
    # `overcharge`: the channel took more than it was asked, yet notifies the asked amount.
    taken_extra = order.amount_fen - int(order.extra.get("ordered_fen", order.amount_fen))
    if taken_extra:
        tamper = replace(tamper, amount_delta_fen=tamper.amount_delta_fen - taken_extra)
    if order.api == "v2":
        return wechat_v2_notify.payment(sandbox, order, tamper)
    if order.api == "v3":
        return wechat_v3_notify.payment(sandbox, order, tamper)
    return alipay_notify.payment(sandbox, order, tamper)


def _refund_delivery(
    sandbox: Sandbox, order: Order, refund: Refund, tamper: Tamper
) -> Delivery | None:
    if refund.api == "v2":
        return wechat_v2_notify.refund(sandbox, order, refund, tamper)
    if refund.api == "v3":
        return wechat_v3_notify.refund(sandbox, order, refund, tamper)
    return alipay_notify.refund(sandbox, order, refund, tamper)


def pay(
    sandbox: Sandbox, channel: str, out_trade_no: str, faults: Iterable[Fault] = ()
) -> PayResult:
    """The resident confirms payment (确认支付): mark paid, then notify (with faults)."""
    store = sandbox.store
    with store.lock:
        order = store.get(channel, out_trade_no)
        if order is None:
            raise PaymentRefused("ORDERNOTEXIST", "订单不存在")
        if order.state == PAID:
            raise PaymentRefused("ORDERPAID", "订单已支付")
        if order.state == CLOSED:
            raise PaymentRefused("ORDERCLOSED", "订单已关闭")
        now = sandbox.clock.now()
        if order.expires_at is not None and now > order.expires_at:
            raise PaymentRefused("ORDEREXPIRED", "订单已过期")
        in_force = sandbox.faults(out_trade_no, faults)
        if in_force.has("overcharge") and "ordered_fen" not in order.extra:
            order.extra["ordered_fen"] = order.amount_fen
            order.amount_fen += OVERCHARGE_FEN
        order.state = PAID
        order.scanned = True
        order.paid_at = now
        if channel == "wechat":
            order.transaction_id = ids.wechat_transaction_id(now)
        else:
            # alipay.trade.create already answered a trade_no; the others get one now.
            order.transaction_id = order.transaction_id or ids.alipay_trade_no(now)
            order.payer_id = order.payer_id or ids.alipay_user_id(order.app_id, DEFAULT_BUYER)
            order.extra["buyer_logon_id"] = ids.alipay_logon_id(order.payer_id)
    if order.notify_url:
        dispatch(
            sandbox.notifier,
            in_force,
            lambda tamper: _payment_delivery(sandbox, order, tamper),
            out_of_order_hold=sandbox.settings.SANDBOX_OUT_OF_ORDER_HOLD,
        )
    return PayResult(order, in_force.names())


def notify_payment(sandbox: Sandbox, order: Order) -> None:
    """Send a paid order's notification again, late (with the order's faults in force): the
    notification a reconciliation run may meet while it heals the same payment."""
    if order.state != PAID:
        raise PaymentRefused("ORDERNOTPAID", "订单未支付")
    if order.notify_url:
        dispatch(
            sandbox.notifier,
            sandbox.faults(order.out_trade_no),
            lambda tamper: _payment_delivery(sandbox, order, tamper),
            out_of_order_hold=sandbox.settings.SANDBOX_OUT_OF_ORDER_HOLD,
        )


def cancel(sandbox: Sandbox, channel: str, out_trade_no: str) -> Order:
    """The resident taps 取消: nothing changes at the gateway (the order stays unpaid, as
    `requestPayment:fail cancel` leaves it, §1.4); only the merchant's query or close moves it."""
    order = sandbox.store.get(channel, out_trade_no)
    if order is None:
        raise PaymentRefused("ORDERNOTEXIST", "订单不存在")
    if order.state != OPEN:
        raise PaymentRefused(
            "ORDERPAID" if order.state == PAID else "ORDERCLOSED", "订单状态不可取消"
        )
    return order


def settle_refund(sandbox: Sandbox, order: Order, refund: Refund) -> None:
    """Mark the refund successful and send its notification (faults of the order apply)."""
    with sandbox.store.lock:
        if refund.status == "SUCCESS":
            return
        refund.status = "SUCCESS"
        refund.succeeded_at = sandbox.clock.now()
    notify_refund(sandbox, order, refund)


def notify_refund(sandbox: Sandbox, order: Order, refund: Refund) -> None:
    """Send a refund's notification; without a notify_url there is none, and a payment notice
    held back by `out_of_order` goes out now instead."""
    if not refund.notify_url:
        for held in sandbox.notifier.take_held((order.channel, order.out_trade_no)):
            sandbox.notifier.submit(held)
        return
    dispatch(
        sandbox.notifier,
        sandbox.faults(order.out_trade_no),
        lambda tamper: _refund_delivery(sandbox, order, refund, tamper),
        out_of_order_hold=sandbox.settings.SANDBOX_OUT_OF_ORDER_HOLD,
    )


def refund_pending(sandbox: Sandbox, order: Order) -> bool:
    """The `refund_pending` fault is in force: new refunds of this order stay PROCESSING
    until `POST /sandbox/control/refund-notify` settles them."""
    return sandbox.faults(order.out_trade_no).has("refund_pending")


def schedule_refund_settlement(sandbox: Sandbox, order: Order, refund: Refund) -> None:
    """WeChat refunds are accepted first and succeed a little later (PROCESSING → SUCCESS,
    §1.7); the delay is SANDBOX_REFUND_SECONDS of vendor time, time-scaled. Under the
    `refund_pending` fault nothing is scheduled: the refund waits for the control call."""
    if refund_pending(sandbox, order):
        return
    delay = sandbox.clock.scaled(sandbox.settings.SANDBOX_REFUND_SECONDS)
    cancel = sandbox.notifier.generation()  # a reset forgets this refund

    def later() -> None:
        if not sandbox.clock.wait(delay, cancel):
            settle_refund(sandbox, order, refund)

    threading.Thread(target=later, name=f"refund-{refund.out_refund_no}", daemon=True).start()


def pay_url(sandbox: Sandbox, channel: str, out_trade_no: str) -> str:
    """The payer page of an order (what the resident would see)."""
    return f"{sandbox.settings.base_url}/sandbox/pay/{channel}/{out_trade_no}"
