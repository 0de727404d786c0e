"""Refunds that reconciliation (对账) decides, through the one refund machinery.

Reconciliation calls these (through `books`) inside the transaction that approves a
difference's `refund`; each writes a `Refund` (or a `StrayRefund`) in state `requested`, which
the refund processor sends after commit, and whose result is booked by the notification's own
path (`stray_refunds.apply_refund_answer`) — out_refund_no, processor, healing, contribution
reversals and their tax records exactly as a staff refund.

- `refund_order_excess`: the channel took more than the order's amount (`amount_mismatch`):
  only the excess goes back; no premium is touched and the order keeps its status.
- `refund_whole_order`: a payment finance decides to give back (`missing_ours` healed,
  `status_mismatch`): every item not already refunded or being refunded, its contributions
  reversed when the money has gone back.
- `refund_stray_trade`: `unknown_trade`: no order, a `StrayRefund` of the trade's amount.

A refusal is `RefundNotApplicable` (409 `refund_not_applicable`): nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import Conflict
from api.payments.models import (
    Contribution,
    ContributionStatus,
    OrderStatus,
    PaymentOrder,
    Refund,
    RefundItem,
    RefundReason,
)
from api.payments.refunds import LIVE_STATES, request_refund
from api.payments.stray_refunds import request_stray_refund

# Orders whose money is with us and not all given back.
REFUNDABLE = (
    OrderStatus.PAID,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.DUPLICATE,
    OrderStatus.PAID_AFTER_CLOSE,
)


class RefundNotApplicable(Conflict):
    """A reconciliation refund that cannot be made for this difference."""

    code = "refund_not_applicable"
    message = "该差异不适用退款"


@dataclass(frozen=True)
class DecidedRefund:
    """What reconciliation keeps of a refund it decided: its number, amount and kind."""

    out_refund_no: str
    amount_fen: int
    kind: str  # order | excess | stray


def _locked_order(session: Session, out_trade_no: str, channel: str) -> PaymentOrder:
    order = session.scalars(
        select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no).with_for_update()
    ).one_or_none()
    if order is None or order.channel != channel:
        raise RefundNotApplicable("未找到本系统的该订单，不能按订单退款")
    if order.status not in REFUNDABLE:
        raise RefundNotApplicable(f"订单状态为 {order.status}，没有可退的款项")
    return order


def refund_order_excess(
    session: Session,
    *,
    out_trade_no: str,
    channel: str,
    channel_amount_fen: int,
    actor: str,
    note: str | None,
) -> DecidedRefund:
    """Give back what the channel took above the order's amount (channel amount − ours)."""
    order = _locked_order(session, out_trade_no, channel)
    excess = channel_amount_fen - order.amount_fen
    if excess <= 0:
        raise RefundNotApplicable("渠道金额不高于订单金额，没有多收的款项可退")
    refund = request_refund(
        session,
        order=order,
        items=[],
        reason=RefundReason.CHANNEL_EXCESS,
        actor=actor,
        note=note,
        amount_fen=excess,
        channel_total_fen=channel_amount_fen,
    )
    return DecidedRefund(refund.out_refund_no, refund.amount_fen, "excess")


def refund_whole_order(
    session: Session, *, out_trade_no: str, channel: str, actor: str, note: str | None
) -> DecidedRefund:
    """Give back everything of the order not yet refunded (nor being refunded)."""
    order = _locked_order(session, out_trade_no, channel)
    busy = set(
        session.scalars(
            select(RefundItem.order_item_id)
            .join(Refund, Refund.id == RefundItem.refund_id)
            .where(Refund.order_id == order.id, Refund.state.in_(LIVE_STATES))
        )
    )
    items = [i for i in order.items if i.id not in busy]
    if not items:
        raise RefundNotApplicable("该订单已全部退款或正在退款中")
    paid = dict(
        session.execute(
            select(Contribution.order_item_id, Contribution.id).where(
                Contribution.order_id == order.id,
                Contribution.status == ContributionStatus.PAID,
            )
        ).all()
    )
    refund = request_refund(
        session,
        order=order,
        items=items,
        reason=RefundReason.RECONCILIATION,
        actor=actor,
        note=note,
        contributions={i.id: paid[i.id] for i in items if i.id in paid},
    )
    return DecidedRefund(refund.out_refund_no, refund.amount_fen, "order")


def refund_stray_trade(
    session: Session,
    *,
    out_trade_no: str,
    channel: str,
    transaction_id: str | None,
    amount_fen: int,
    actor: str,
    note: str | None,
) -> DecidedRefund:
    """Send a trade that is not ours back whole (no order, nothing of ours reversed)."""
    ours = session.scalar(
        select(PaymentOrder.id).where(
            PaymentOrder.out_trade_no == out_trade_no, PaymentOrder.channel == channel
        )
    )
    if ours is not None:
        raise RefundNotApplicable("该交易属于本系统的订单，请按订单退款")
    if amount_fen <= 0:
        raise RefundNotApplicable("退款金额为零")
    stray = request_stray_refund(
        session,
        channel=channel,
        out_trade_no=out_trade_no,
        transaction_id=transaction_id,
        amount_fen=amount_fen,
        actor=actor,
        note=note,
    )
    return DecidedRefund(stray.out_refund_no, stray.amount_fen, "stray")
