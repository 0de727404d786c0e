"""Refunding a difference (差异退款): what an approved `refund` does, and how it settles.

Which refund a difference gets (PROTOCOLS.md §6.3: 长款 that cannot be kept is refunded):

- `amount_mismatch` where the channel amount is above ours: the excess (bill − ours) on that
  trade; the premium stays paid, the order keeps its status;
- `missing_ours` healed (the order is paid now), or `status_mismatch` where the bill says paid
  and we booked it: the whole order's remaining refundable amount, its contributions reversed
  (with their reversal tax records) when the money has gone back;
- `unknown_trade` (a payment row): a stray refund of the bill's amount — no order, nothing of
  ours reversed.

Anything else — another type, a channel that took less, a zero amount, an order not paid — is
refused when the refund is proposed (and again, against the books as they are then, when it is
approved): 409 `refund_not_applicable`, nothing changed.

The refund itself is decided through `api.payments.books` (the refund machinery: the same
refund table, state machine, out_refund_no, processor and healing as a staff refund) inside the
approval's transaction, so an approval without its refund, or a refund without an approval, can
never be committed. The item then waits in `refund_pending` holding the refund's out_refund_no;
`settle_refund_items` (the payments worker, every round, and the approval request right after
sending) moves it to `resolved` once the refund succeeded, or back to `open` — the history
saying why — once it failed. Payments never imports this package: reconciliation asks.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.db import Database, utcnow
from api.payments import books
from api.reconciliation.matching import PAID_ROW_STATUSES
from api.reconciliation.models import ItemStatus, Outcome, ReconciliationItem, Resolution
from api.reconciliation.runs import history

SYSTEM = "reconciliation"
NotApplicable = books.RefundNotApplicable


def _order_paid(session: Session, out_trade_no: str, channel: str) -> bool:
    facts = books.orders_by_out_trade_no(session, [out_trade_no]).get(out_trade_no)
    return facts is not None and facts.channel == channel and facts.paid


def check_applicable(session: Session, item: ReconciliationItem) -> None:
    """Raise `NotApplicable` unless `refund` makes sense for this item (see the table above)."""
    if item.side != "payment":
        raise NotApplicable("退款差异只适用于支付记录，退款记录的差异请核实后处理")
    bill = item.bill_amount_fen or 0
    ours = item.our_amount_fen or 0
    if item.type == Outcome.AMOUNT_MISMATCH:
        if bill - ours <= 0:
            raise NotApplicable("渠道金额不高于订单金额，没有多收的款项可退")
        if not _order_paid(session, item.out_trade_no, item.channel):
            raise NotApplicable("该订单在本系统中不是已支付状态，不能退款")
    elif item.type in (Outcome.MISSING_OURS, Outcome.STATUS_MISMATCH):
        if item.type == Outcome.STATUS_MISMATCH and item.bill_status not in PAID_ROW_STATUSES:
            raise NotApplicable("渠道账单未显示该笔已支付，不能退款")
        if not _order_paid(session, item.out_trade_no, item.channel):
            raise NotApplicable("该订单在本系统中不是已支付状态，不能退款")
    elif item.type == Outcome.UNKNOWN_TRADE:
        if bill <= 0:
            raise NotApplicable("退款金额为零")
    else:
        raise NotApplicable(f"差异类型 {item.type} 不适用退款")


def may_refund_resolved(item: ReconciliationItem) -> bool:
    """A `missing_ours` healed at once is resolved (`healed`) yet may still be given back."""
    return (
        item.type == Outcome.MISSING_OURS
        and item.status == ItemStatus.RESOLVED
        and item.resolution == Resolution.HEALED
    )


def decide(
    session: Session, item: ReconciliationItem, *, actor: str, note: str | None
) -> books.DecidedRefund:
    """Write the item's refund (state `requested`) in the caller's transaction."""
    check_applicable(session, item)
    text = f"对账差异 #{item.id}: {item.reason or ''}"[:500]
    if item.type == Outcome.AMOUNT_MISMATCH:
        return books.refund_order_excess(
            session,
            out_trade_no=item.out_trade_no,
            channel=item.channel,
            channel_amount_fen=item.bill_amount_fen or 0,
            actor=actor,
            note=text,
        )
    if item.type == Outcome.UNKNOWN_TRADE:
        return books.refund_stray_trade(
            session,
            out_trade_no=item.out_trade_no,
            channel=item.channel,
            transaction_id=(item.detail or {}).get("transaction_id"),
            amount_fen=item.bill_amount_fen or 0,
            actor=actor,
            note=text,
        )
    return books.refund_whole_order(
        session, out_trade_no=item.out_trade_no, channel=item.channel, actor=actor, note=text
    )


def settle_refund_items(db: Database, *, only: list[int] | None = None) -> dict[str, int]:
    """Move `refund_pending` items whose refund is final: succeeded → `resolved`, failed →
    back to `open` with the reason in the history (a worker job: commits)."""
    counts: dict[str, int] = {}
    with db.job() as session:
        query = (
            select(ReconciliationItem)
            .where(ReconciliationItem.status == ItemStatus.REFUND_PENDING)
            .order_by(ReconciliationItem.id)
            .with_for_update(skip_locked=True)
        )
        if only is not None:
            query = query.where(ReconciliationItem.id.in_(only))
        items = list(session.scalars(query))
        outcomes = books.refund_outcomes(
            session, [i.refund_out_refund_no for i in items if i.refund_out_refund_no]
        )
        for item in items:
            outcome = outcomes.get(item.refund_out_refund_no or "")
            state = outcome.state if outcome else "missing"
            if state not in ("succeeded", "failed", "missing"):
                counts["waiting"] = counts.get("waiting", 0) + 1
                continue
            _settle(session, item, outcome)
            counts[state] = counts.get(state, 0) + 1
    return counts


def _settle(
    session: Session, item: ReconciliationItem, outcome: books.RefundOutcome | None
) -> None:
    before, now = item.status, utcnow()
    number, amount = item.refund_out_refund_no, item.refund_amount_fen
    item.updated_at = now
    if outcome is not None and outcome.state == "succeeded":
        item.status = ItemStatus.RESOLVED
        item.resolved_at = now
        action, comment = "refund_succeeded", f"{number} 退款成功 {amount} 分"
    else:
        why = (outcome.last_error if outcome else None) or "渠道拒绝退款"
        item.status = ItemStatus.OPEN
        item.resolution = None
        item.maker = item.checker = None
        item.refund_out_refund_no = item.refund_amount_fen = None
        action, comment = "refund_failed", f"{number} 退款失败: {why}"[:1000]
    history(session, item, actor=SYSTEM, action=action, before=before, comment=comment)
    audit(
        session,
        actor=SYSTEM,
        action=f"reconciliation.item.{action}",
        subject=f"reconciliation_item:{item.id}",
        detail={"type": item.type, "out_refund_no": number, "amount_fen": amount},
    )
