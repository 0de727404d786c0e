"""Service functions that reconciliation (api/reconciliation) uses to read our books.

Reconciliation must not reach into the payment models; it asks here, by key, and gets plain
facts back. Lookups take many keys at once (a busy day's bill has tens of thousands of rows),
in chunks small enough for any backend's parameter limit. Healing a payment goes through
`orders.apply_from_query`, the very function the open-order healer and — through
`settlement.apply_payment` — a notification use, so a payment is booked exactly once whoever
comes first. Refunds that reconciliation decides go through `reconciliation_refunds` (the
refund machinery itself); reconciliation follows them by out_refund_no (`refund_outcomes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ARRAY, String, and_, any_, func, literal, or_, select
from sqlalchemy.orm import Session

from api.clock import BEIJING
from api.config import Config
from api.db import Database
from api.payments.channels import get_channel
from api.payments.channels.base import BillRow
from api.payments.channels.bills import MalformedBill, parse_bill
from api.payments.models import (
    Contribution,
    OrderStatus,
    PaymentOrder,
    Refund,
    RefundReason,
    RefundState,
    StrayRefund,
)
from api.payments.orders import apply_from_query
from api.payments.reconciliation_refunds import (
    DecidedRefund,
    RefundNotApplicable,
    refund_order_excess,
    refund_stray_trade,
    refund_whole_order,
)
from api.payments.refunds import process_due_refunds
from api.payments.stray_refunds import process_due_stray_refunds

__all__ = [
    "BillRow",
    "ContributionFacts",
    "DecidedRefund",
    "MalformedBill",
    "OrderFacts",
    "RefundFacts",
    "RefundNotApplicable",
    "RefundOutcome",
    "beijing_day",
    "contributions_of_day",
    "fetch_bill",
    "heal_payment",
    "orders_by_out_trade_no",
    "paid_keys_between",
    "paid_orders_between",
    "paid_total_between",
    "parse_bill",
    "premiumless_refunds_between",
    "refund_order_excess",
    "refund_outcomes",
    "refund_stray_trade",
    "refund_whole_order",
    "refunds_between",
    "refunds_by_out_refund_no",
    "send_refunds",
]

CHUNK = 900
PG_CHUNK = 20_000
# Orders the channel took money for: every state a payment leads to.
PAID_STATES = (
    OrderStatus.PAID,
    OrderStatus.DUPLICATE,
    OrderStatus.PAID_AFTER_CLOSE,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.REFUNDED,
)
# Refunds the channel has accepted (and so shows on the bill of the day it was initiated).
SENT_REFUND_STATES = (RefundState.PROCESSING, RefundState.SUCCEEDED)


@dataclass(frozen=True)
class OrderFacts:
    """One payment order as reconciliation needs it."""

    out_trade_no: str
    channel: str
    status: str
    amount_fen: int
    paid_amount_fen: int | None
    paid_at: datetime | None
    transaction_id: str | None

    @property
    def paid(self) -> bool:
        return self.status in PAID_STATES


@dataclass(frozen=True)
class RefundFacts:
    """One refund as reconciliation needs it."""

    out_refund_no: str
    out_trade_no: str
    channel: str
    state: str
    amount_fen: int
    created_at: datetime


def beijing_day(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Beijing calendar day as aware instants (bills are cut by it, §6.1)."""
    start = datetime.combine(day, time(0), BEIJING)
    return start, start + timedelta(days=1)


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _chunks(keys: Iterable[str], session: Session) -> Iterator[list[str]]:
    """Keys in batches: PostgreSQL takes one array parameter of any size (`= ANY`), SQLite
    one parameter per key (at most 999 in older builds)."""
    unique = sorted(set(keys))
    size = PG_CHUNK if _postgres(session) else CHUNK
    for i in range(0, len(unique), size):
        yield unique[i : i + size]


def _among(column: Any, chunk: list[str], session: Session) -> Any:
    if _postgres(session):
        return column == any_(literal(chunk, ARRAY(String)))
    return column.in_(chunk)


_ORDER_COLUMNS = (
    PaymentOrder.out_trade_no,
    PaymentOrder.channel,
    PaymentOrder.status,
    PaymentOrder.amount_fen,
    PaymentOrder.paid_amount_fen,
    PaymentOrder.paid_at,
    PaymentOrder.transaction_id,
)


def orders_by_out_trade_no(session: Session, keys: Iterable[str]) -> dict[str, OrderFacts]:
    """Our orders among `keys` (any channel, any state). Columns, not entities: a busy day
    asks for tens of thousands."""
    found: dict[str, OrderFacts] = {}
    for chunk in _chunks(keys, session):
        for row in session.execute(
            select(*_ORDER_COLUMNS).where(_among(PaymentOrder.out_trade_no, chunk, session))
        ):
            found[row[0]] = OrderFacts(*row)
    return found


def _refund_query() -> Any:
    return select(Refund, PaymentOrder.out_trade_no, PaymentOrder.channel).join(
        PaymentOrder, PaymentOrder.id == Refund.order_id
    )


def _refund_facts(row: Any) -> RefundFacts:
    refund, out_trade_no, channel = row
    return RefundFacts(
        refund.out_refund_no,
        out_trade_no,
        channel,
        refund.state,
        refund.amount_fen,
        refund.created_at,
    )


_STRAY_COLUMNS = (
    StrayRefund.out_refund_no,
    StrayRefund.out_trade_no,
    StrayRefund.channel,
    StrayRefund.state,
    StrayRefund.amount_fen,
    StrayRefund.created_at,
)


def refunds_by_out_refund_no(session: Session, keys: Iterable[str]) -> dict[str, RefundFacts]:
    """Our refunds among `keys`: of our orders, and stray refunds (a trade not ours sent
    back), which the channel bills as refunds of that trade."""
    keys = list(keys)
    found: dict[str, RefundFacts] = {}
    for chunk in _chunks(keys, session):
        query = _refund_query().where(_among(Refund.out_refund_no, chunk, session))
        for row in session.execute(query):
            facts = _refund_facts(row)
            found[facts.out_refund_no] = facts
        strays = select(*_STRAY_COLUMNS).where(_among(StrayRefund.out_refund_no, chunk, session))
        for row in session.execute(strays):
            found[row[0]] = RefundFacts(*row)
    return found


def _paid_between(channel: str, start: datetime, end: datetime) -> Any:
    """Orders of `channel` paid in [start, end) by the channel's payment time (read through
    `ix_payment_orders_paid_at`: one day among a season's orders)."""
    return and_(
        PaymentOrder.channel == channel,
        PaymentOrder.status.in_(PAID_STATES),
        PaymentOrder.paid_at >= start,
        PaymentOrder.paid_at < end,
    )


def paid_orders_between(
    session: Session, channel: str, start: datetime, end: datetime
) -> list[OrderFacts]:
    """Orders of `channel` paid in [start, end) by the channel's payment time."""
    query = select(*_ORDER_COLUMNS).where(_paid_between(channel, start, end))
    return [OrderFacts(*row) for row in session.execute(query)]


def paid_keys_between(session: Session, channel: str, start: datetime, end: datetime) -> list[str]:
    """The out_trade_no of `paid_orders_between`: a busy day's bill already brought most of
    those orders' facts (`orders_by_out_trade_no`), so the day is read as keys only and the
    caller asks for the facts it lacks."""
    query = select(PaymentOrder.out_trade_no).where(_paid_between(channel, start, end))
    return list(session.scalars(query))


def paid_total_between(session: Session, channel: str, start: datetime, end: datetime) -> int:
    """The sum of `paid_orders_between`'s amounts, in one aggregate."""
    total = session.scalar(
        select(func.coalesce(func.sum(PaymentOrder.amount_fen), 0)).where(
            _paid_between(channel, start, end)
        )
    )
    return int(total or 0)


def refunds_between(
    session: Session, channel: str, start: datetime, end: datetime
) -> list[RefundFacts]:
    """Refunds of `channel` (stray ones too) accepted by it and requested in [start, end)."""
    query = _refund_query().where(
        PaymentOrder.channel == channel,
        Refund.state.in_(SENT_REFUND_STATES),
        Refund.created_at >= start,
        Refund.created_at < end,
    )
    strays = select(*_STRAY_COLUMNS).where(
        StrayRefund.channel == channel,
        StrayRefund.state.in_(SENT_REFUND_STATES),
        StrayRefund.created_at >= start,
        StrayRefund.created_at < end,
    )
    return [_refund_facts(row) for row in session.execute(query)] + [
        RefundFacts(*row) for row in session.execute(strays)
    ]


def premiumless_refunds_between(
    session: Session, channel: str, start: datetime, end: datetime
) -> int:
    """Fen refunded through `channel` in [start, end) that covered no premium: excess refunds
    (the channel took more than the order) and stray refunds. The bill shows them as refunds;
    no contribution is reversed for them (the three-way check explains them with this)."""
    excess = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0))
        .join(PaymentOrder, PaymentOrder.id == Refund.order_id)
        .where(
            PaymentOrder.channel == channel,
            Refund.reason == RefundReason.CHANNEL_EXCESS,
            Refund.state.in_(SENT_REFUND_STATES),
            Refund.created_at >= start,
            Refund.created_at < end,
        )
    )
    stray = session.scalar(
        select(func.coalesce(func.sum(StrayRefund.amount_fen), 0)).where(
            StrayRefund.channel == channel,
            StrayRefund.state.in_(SENT_REFUND_STATES),
            StrayRefund.created_at >= start,
            StrayRefund.created_at < end,
        )
    )
    return int(excess or 0) + int(stray or 0)


@dataclass(frozen=True)
class ContributionFacts:
    """One contribution for the three-way check: what it was, when paid/reversed."""

    id: int
    out_trade_no: str | None
    amount_fen: int
    paid_at: datetime
    status: str
    reversed_at: datetime | None


def contributions_of_day(session: Session, channel: str, day: date) -> list[ContributionFacts]:
    """Contributions paid through `channel` on `day` or reversed on it (Beijing, channel time:
    a contribution's paid_at is the channel's payment time)."""
    start, end = beijing_day(day)
    query = (
        select(Contribution)
        .join(PaymentOrder, PaymentOrder.id == Contribution.order_id)
        .where(
            PaymentOrder.channel == channel,
            or_(
                and_(Contribution.paid_at >= start, Contribution.paid_at < end),
                and_(Contribution.reversed_at >= start, Contribution.reversed_at < end),
            ),
        )
        .order_by(Contribution.id)
    )
    return [
        ContributionFacts(c.id, c.out_trade_no, c.amount_fen, c.paid_at, c.status, c.reversed_at)
        for c in session.scalars(query)
    ]


def fetch_bill(settings: Config, channel: str, day: date) -> bytes | None:
    """The channel's trade bill file for `day` as sent; None when it has no bill.

    Raises `ChannelError` when the channel cannot be asked now (down, refused)."""
    return get_channel(settings, channel).fetch_bill(day)


def heal_payment(db: Database, settings: Config, out_trade_no: str, channel: str) -> str:
    """补单 for a bill row we do not show paid: ask the channel, then apply what it says exactly
    as a notification would. Returns paid | open | closed | not_found | error (commits)."""
    return apply_from_query(db, settings, out_trade_no, channel, actor="reconciliation")


@dataclass(frozen=True)
class RefundOutcome:
    """Where one refund stands: requested | processing | succeeded | failed, and why it failed."""

    out_refund_no: str
    state: str
    last_error: str | None


def refund_outcomes(session: Session, out_refund_nos: Iterable[str]) -> dict[str, RefundOutcome]:
    """The state of each refund named (of our orders or stray), by out_refund_no."""
    found: dict[str, RefundOutcome] = {}
    for model in (Refund, StrayRefund):
        for chunk in _chunks(out_refund_nos, session):
            query = select(model.out_refund_no, model.state, model.last_error).where(
                _among(model.out_refund_no, chunk, session)
            )
            for no, state, error in session.execute(query):
                found[no] = RefundOutcome(no, state, error)
    return found


def send_refunds(db: Database, settings: Config, out_refund_nos: Iterable[str]) -> None:
    """Send the refunds named to their channel now (after the commit that decided them); what
    cannot be sent now the worker's refund processor sends later (commits)."""
    keys = list(out_refund_nos)
    if not keys:
        return
    with db.job() as session:
        ids = list(session.scalars(select(Refund.id).where(Refund.out_refund_no.in_(keys))))
        strays = list(
            session.scalars(select(StrayRefund.id).where(StrayRefund.out_refund_no.in_(keys)))
        )
    if ids:
        process_due_refunds(db, settings, only=ids)
    if strays:
        process_due_stray_refunds(db, settings, only=strays)
