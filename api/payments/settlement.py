"""Settlement 入账: applying what a channel says about an order, whoever heard it.

A notification, the reconciler's order query and a refused close (the channel says "already
paid") all end here, in `apply_payment`, so a payment is applied the same way — exactly once —
however we learn of it (DESIGN.md "The payment path" 3–4). The caller owns the transaction:
it commits after this returns, or rolls back and calls again on `LostRace` / `IntegrityError`
(a concurrent copy won; the second pass then sees the new state and takes the duplicate path).

Decisions (documented here because the code enforces them):
- Amount: the channel's amount must equal the order's to the fen, else nothing changes
  (`amount_mismatch`): an over- or under-payment is never booked (DOMAIN.md 超标准收费).
- Some or all items already paid (two family members paying at once, an agent's cash receipt
  while an online order was open): the order becomes `duplicate`; the items not yet paid are
  booked (the order was valid and they are still owed at the priced amounts), the already-paid
  items get no contribution and are refunded automatically (a `Refund` in `requested`).
- Paid after we closed it (closed, expired or failed at our end — e.g. an Alipay QR scanned
  after close said "trade does not exist"): `paid_after_close`, nothing is booked and the
  whole amount is refunded: the order had been superseded, its items may be in a newer order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.backpay import service as backpay
from api.db import utcnow
from api.households.models import Person
from api.payments.channels import ChannelTrade
from api.payments.ledger import ITEM_COLUMNS, ItemRow, book_contributions, paid_on, with_people
from api.payments.models import (
    PAID_LITERAL,
    Contribution,
    NotificationOutcome,
    OrderItem,
    OrderStatus,
    PaymentOrder,
    RefundReason,
)
from api.payments.refunds import request_refund
from api.payments.states import PAID_STATES, LostRace, transition_order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """What applying a channel's word did (becomes the callback log's outcome)."""

    outcome: NotificationOutcome
    reason: str | None = None
    order_id: int | None = None
    detail: str | None = None


@dataclass
class OrderRow:
    """What settling needs of an order, read with one locking SELECT (no ORM object)."""

    id: int
    out_trade_no: str
    channel: str
    household_id: int
    year: int
    amount_fen: int
    status: str
    transaction_id: str | None


_COLUMNS = (
    PaymentOrder.id,
    PaymentOrder.out_trade_no,
    PaymentOrder.channel,
    PaymentOrder.household_id,
    PaymentOrder.year,
    PaymentOrder.amount_fen,
    PaymentOrder.status,
    PaymentOrder.transaction_id,
)
_FIND = select(*_COLUMNS).where(PaymentOrder.out_trade_no == bindparam("no"))
_FIND_LOCKED = _FIND.with_for_update()


def find_order(session: Session, out_trade_no: str, *, lock: bool = True) -> OrderRow | None:
    """The order, row-locked on PostgreSQL (SELECT … FOR UPDATE) so copies queue up."""
    row = (
        session.connection()
        .execute(_FIND_LOCKED if lock else _FIND, {"no": out_trade_no})
        .one_or_none()
    )
    return OrderRow(*row) if row is not None else None


# The order (row-locked), its items with their people, and whether each item's premium is
# already paid, in ONE statement: the notification hot path's first three queries were three
# round trips. The lock is on the order row only. A copy that waited for it gets the order's
# committed new state (PostgreSQL re-reads a locked row that changed) and takes the duplicate
# path before `already` matters; a different order paying the same premium at the same moment
# is caught by the contributions' partial unique index (the caller rolls back and re-applies).
_PAID_ALREADY = (
    select(Contribution.id)
    .where(
        # The item's year: a back-payment or a newborn's birth-year item is of another year.
        Contribution.year == OrderItem.year,
        Contribution.person_id == OrderItem.person_id,
        Contribution.insurance == OrderItem.insurance,
        # A literal, not a parameter: a partial index's predicate only matches a constant,
        # so with a parameter PostgreSQL's generic plan could not use the unique index
        # (person_id, insurance, year) WHERE status = 'paid', judged it dearer and re-planned
        # this statement on every execution (a third of a millisecond each time).
        Contribution.status == PAID_LITERAL,
    )
    .exists()
)
_FIND_WITH_ITEMS = (
    with_people(
        select(*_COLUMNS, *ITEM_COLUMNS, _PAID_ALREADY)
        .select_from(PaymentOrder)
        .outerjoin(OrderItem, OrderItem.order_id == PaymentOrder.id)
        .outerjoin(Person, Person.id == OrderItem.person_id),
        outer=True,
    )
    .where(PaymentOrder.out_trade_no == bindparam("no"))
    .order_by(OrderItem.id)
    .with_for_update(of=PaymentOrder)
)


PaidKey = tuple[int, str, int]  # person, insurance, year


def find_order_with_items(
    session: Session, out_trade_no: str
) -> tuple[OrderRow, list[ItemRow], set[PaidKey]] | None:
    """The locked order, its items, and the (person, insurance, year) of those already
    paid."""
    rows = session.connection().execute(_FIND_WITH_ITEMS, {"no": out_trade_no}).all()
    if not rows:
        return None
    width = len(_COLUMNS)
    order = OrderRow(*rows[0][:width])
    items: list[ItemRow] = []
    already: set[PaidKey] = set()
    for row in rows:
        if row[width] is None:  # an order without items (outer join)
            continue
        item = ItemRow(*row[width:-1])
        items.append(item)
        if row[-1]:
            already.add((item.person_id, item.insurance, item.year))
    return order, items, already


def already_paid(
    session: Session, *, year: int, keys: list[PaidKey], read: set[PaidKey]
) -> set[PaidKey]:
    """Which (person, insurance, year) of `keys` already have a paid contribution: as
    read with the locked order (`find_order_with_items`), no further query. The one place
    that decision is taken (a test stands in for it to stage a lost race)."""
    return {key for key in keys if key in read}


def apply_payment(session: Session, *, trade: ChannelTrade, channel: str, actor: str) -> Applied:
    """Apply "this order is paid" from a verified notification or a channel query."""
    found = find_order_with_items(session, trade.out_trade_no)
    if found is None:
        return Applied(NotificationOutcome.REJECTED, "unknown_order")
    order, items, already = found
    if order.channel != channel:
        return _refuse(session, order, actor, "wrong_channel", f"paid via {channel}")
    if trade.amount_fen != order.amount_fen:
        return _refuse(
            session,
            order,
            actor,
            "amount_mismatch",
            f"channel {trade.amount_fen} fen, order {order.amount_fen} fen",
        )
    if order.status in PAID_STATES:
        if trade.transaction_id and order.transaction_id not in (None, trade.transaction_id):
            log.warning(
                "paid order notified with another transaction id",
                extra={"out_trade_no": order.out_trade_no},
            )
            return Applied(
                NotificationOutcome.DUPLICATE, "other_transaction_id", order.id, order.status
            )
        return Applied(NotificationOutcome.DUPLICATE, None, order.id, order.status)

    paid_at = trade.paid_at or utcnow()
    values = {
        "paid_at": paid_at,
        "transaction_id": trade.transaction_id,
        "paid_amount_fen": trade.amount_fen,
    }
    if order.status in (OrderStatus.CLOSED, OrderStatus.EXPIRED, OrderStatus.FAILED):
        if not transition_order(
            session,
            order,
            OrderStatus.PAID_AFTER_CLOSE,
            actor=actor,
            reason="paid_after_close",
            values=values,
        ):
            raise LostRace(order.out_trade_no)
        request_refund(
            session,
            order=order,
            items=items,
            reason=RefundReason.PAID_AFTER_CLOSE,
            actor="system",
            note="订单关闭后仍收到付款，自动退款",
        )
        return Applied(NotificationOutcome.APPLIED, "paid_after_close", order.id)

    already = already_paid(
        session,
        year=order.year,
        keys=[(i.person_id, i.insurance, i.year) for i in items],
        read=already,
    )
    overlap = [i for i in items if (i.person_id, i.insurance, i.year) in already]
    fresh = [i for i in items if (i.person_id, i.insurance, i.year) not in already]
    # Back-payments are paid once: claim each approval (conditional on approved, unexpired);
    # one withdrawn, expired or paid by another order meanwhile is refunded like a duplicate.
    claims = {i.backpay_id for i in fresh if i.backpay_id is not None}
    if claims:
        claimed = backpay.claim(
            session, approval_ids=claims, order_id=order.id, on=paid_on(paid_at)
        )
        lost = [i for i in fresh if i.backpay_id is not None and i.backpay_id not in claimed]
        overlap += lost
        fresh = [i for i in fresh if i not in lost]
    target = OrderStatus.DUPLICATE if overlap else OrderStatus.PAID
    if not transition_order(
        session,
        order,
        target,
        actor=actor,
        reason="duplicate_payment" if overlap else "payment",
        values=values,
        detail={"already_paid_items": len(overlap)} if overlap else None,
    ):
        raise LostRace(order.out_trade_no)
    booked = book_contributions(
        session,
        order_id=order.id,
        household_id=order.household_id,
        out_trade_no=order.out_trade_no,
        transaction_id=trade.transaction_id,
        items=fresh,
        paid_at=paid_at,
        source=order.channel,
    )
    if claims:
        backpay.link_contributions(
            session,
            {
                i.backpay_id: cid
                for i, cid in zip(fresh, booked, strict=True)
                if i.backpay_id is not None
            },
        )
    if overlap:
        request_refund(
            session,
            order=order,
            items=overlap,
            reason=RefundReason.DUPLICATE_PAYMENT,
            actor="system",
            note="部分或全部项目已缴费，自动退还重复部分",
        )
        return Applied(NotificationOutcome.APPLIED, "duplicate_payment", order.id)
    return Applied(NotificationOutcome.APPLIED, None, order.id)


def _refuse(session: Session, order: OrderRow, actor: str, reason: str, detail: str) -> Applied:
    audit(
        session,
        actor=actor,
        action="payments.notification.refused",
        subject=f"order:{order.out_trade_no}",
        outcome="refused",
        detail={"reason": reason, "detail": detail},
    )
    return Applied(NotificationOutcome.REJECTED, reason, order.id, detail)


def apply_closed(session: Session, *, trade: ChannelTrade, channel: str, actor: str) -> Applied:
    """The channel closed the trade unpaid (Alipay TRADE_CLOSED): close ours if still open."""
    order = find_order(session, trade.out_trade_no)
    if order is None:
        return Applied(NotificationOutcome.REJECTED, "unknown_order")
    if order.channel != channel:
        return _refuse(session, order, actor, "wrong_channel", f"closed via {channel}")
    if order.status not in (OrderStatus.CREATED, OrderStatus.OPEN):
        return Applied(NotificationOutcome.IGNORED, f"order_{order.status}", order.id)
    if not transition_order(
        session,
        order,
        OrderStatus.CLOSED,
        actor=actor,
        reason="closed_by_channel",
        values={"closed_at": utcnow()},
    ):
        raise LostRace(order.out_trade_no)
    return Applied(NotificationOutcome.APPLIED, "closed", order.id)
