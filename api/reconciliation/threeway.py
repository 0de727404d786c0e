"""The three-way check (三方核对), per channel per Beijing day:

    bill net   = the channel's bill: payments − refunds (订单金额; fees shown apart), less
                 the differences finance resolved and the refunds that covered no premium
                 (an excess or a stray trade given back) (`explained_fen`)
    our net    = contributions paid through that channel that day − those reversed that day
                 (by the channel's time: a contribution's paid_at is the channel's)
    tax net    = the part of "our net" whose tax records the tax side acknowledged (booked)

Each side is computed independently; when they differ the answer lists the records behind
the difference: the run's unresolved items (bill ↔ us) and every contribution whose tax
record is still pending, sent but unacknowledged, rejected or dead (us ↔ tax).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.payments import books
from api.payments.outbox.service import delivery_status
from api.reconciliation.models import (
    ItemStatus,
    ReconciliationItem,
    ReconciliationRun,
    Resolution,
)
from api.reconciliation.runs import CHANNELS

PAID_EVENT = "contribution.paid"
REVERSED_EVENT = "contribution.reversed"


def _in_day(moment: Any, day: date) -> bool:
    start, end = books.beijing_day(day)
    return moment is not None and start <= moment < end


def _items(session: Session, run: ReconciliationRun | None) -> tuple[int, int]:
    """(unresolved items, fen explained by resolved ones). A difference finance resolved
    (matched manually, refunded, written off, carried over) explains its bill − ours amount;
    a healed one needs no explaining (the payment is in our books now)."""
    if run is None:
        return 0, 0
    items = session.scalars(
        select(ReconciliationItem).where(ReconciliationItem.run_id == run.id)
    ).all()
    unresolved = sum(1 for i in items if i.status != ItemStatus.RESOLVED)
    explained = 0
    for item in items:
        if item.status != ItemStatus.RESOLVED or item.resolution == Resolution.HEALED:
            continue
        gap = (item.bill_amount_fen or 0) - (item.our_amount_fen or 0)
        explained += gap if item.side == "payment" else -gap
    return unresolved, explained


def three_way(session: Session, day: date, channel: str) -> dict[str, Any]:
    run = session.scalars(
        select(ReconciliationRun).where(
            ReconciliationRun.channel == channel, ReconciliationRun.bill_date == day
        )
    ).one_or_none()
    contributions = books.contributions_of_day(session, channel, day)
    deliveries = delivery_status(session, [c.id for c in contributions])
    our_paid = our_reversed = tax_paid = tax_reversed = 0
    tax_differences: list[dict[str, Any]] = []
    for c in contributions:
        records = {r.event: r for r in deliveries[c.id].records}
        wanted = []
        if _in_day(c.paid_at, day):
            our_paid += c.amount_fen
            wanted.append(PAID_EVENT)
        if c.reversed_at is not None and _in_day(c.reversed_at, day):
            our_reversed += c.amount_fen
            wanted.append(REVERSED_EVENT)
        for event in wanted:
            record = records.get(event)
            booked = record is not None and record.ack_status == "booked"
            if booked:
                if event == PAID_EVENT:
                    tax_paid += c.amount_fen
                else:
                    tax_reversed += c.amount_fen
                continue
            tax_differences.append(
                {
                    "contribution_id": c.id,
                    "out_trade_no": c.out_trade_no,
                    "event": event,
                    "amount_fen": c.amount_fen,
                    "record_id": record.record_id if record else None,
                    "record_status": record.status if record else "missing",
                    "ack_status": record.ack_status if record else None,
                    "last_error": record.last_error if record else None,
                }
            )
    bill_net = None if run is None else run.bill_total_fen - run.bill_refund_fen
    our_net = our_paid - our_reversed
    tax_net = tax_paid - tax_reversed
    open_items, explained = _items(session, run)
    if run is not None:
        # Refunds that covered no premium (an excess, a stray trade) are on the bill and in
        # no contribution: explained, like the differences they gave back.
        explained -= books.premiumless_refunds_between(session, channel, *books.beijing_day(day))
    adjusted = None if bill_net is None else bill_net - explained
    return {
        "channel": channel,
        "date": day.isoformat(),
        "reconciled": run is not None,
        "run_id": run.id if run else None,
        "bill": None
        if run is None
        else {
            "paid_fen": run.bill_total_fen,
            "refunded_fen": run.bill_refund_fen,
            "net_fen": bill_net,
            "fee_fen": run.bill_fee_fen,
        },
        "ours": {"paid_fen": our_paid, "reversed_fen": our_reversed, "net_fen": our_net},
        "tax": {"paid_fen": tax_paid, "reversed_fen": tax_reversed, "net_fen": tax_net},
        "explained_fen": explained,
        "bill_minus_ours_fen": None if adjusted is None else adjusted - our_net,
        "ours_minus_tax_fen": our_net - tax_net,
        "balanced": adjusted is not None and adjusted == our_net == tax_net,
        "unresolved_items": open_items,
        "tax_differences": tax_differences,
    }


def three_way_all(session: Session, day: date, channel: str | None = None) -> list[dict[str, Any]]:
    return [three_way(session, day, c) for c in ((channel,) if channel else CHANNELS)]
