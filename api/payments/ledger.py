"""The ledger 缴费台账: booking and reversing `Contribution` rows with their tax records.

Every contribution is written together with its outbox record (`contribution.paid`), and every
reversal with its reversal record (`contribution.reversed`), in the caller's transaction
(transactional outbox, DESIGN.md "The tax-side reconciliation queue"). Nothing here commits.

This is the notification hot path, so it speaks SQL (Core statements: one SELECT for the
items with their persons, one multi-row INSERT … RETURNING for the contributions) rather than
loading and flushing ORM objects one by one (bench/notify_throughput.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from api.clock import BEIJING
from api.db import unnest_insert, unnest_params, utcnow
from api.households.models import Household, Person, Town, Village
from api.payments.models import PAID_LITERAL, Contribution, ContributionStatus, OrderItem
from api.payments.outbox import ContributionEvent
from api.payments.outbox.service import enqueue_contribution_events


@dataclass(frozen=True)
class ItemRow:
    """An order item with what its tax record needs about the person (read in one query)."""

    id: int
    person_id: int
    insurance: str
    year: int
    amount_fen: int
    government_pays_fen: int
    subsidy_fen: int
    pension_tier: int | None
    late: bool
    id_number: str
    name: str
    household_no: str
    village_code: str
    town_code: str
    birth_date: date
    kind: str
    backpay_id: int | None


_WHO = (Person.id_number, Person.name, Household.household_no, Village.code, Town.code)


def with_people(query: Any, *, outer: bool = False) -> Any:
    """Join a query that has `Person` to the person's household, village and town."""
    for target, on in (
        (Household, Person.household_id == Household.id),
        (Village, Household.village_id == Village.id),
        (Town, Village.town_id == Town.id),
    ):
        query = query.join(target, on, isouter=outer)
    return query


# ItemRow's fields, in order.
ITEM_COLUMNS = (
    OrderItem.id,
    OrderItem.person_id,
    OrderItem.insurance,
    OrderItem.year,
    OrderItem.amount_fen,
    OrderItem.government_pays_fen,
    OrderItem.subsidy_fen,
    OrderItem.pension_tier,
    OrderItem.late,
    *_WHO,
    Person.birth_date,
    OrderItem.kind,
    OrderItem.backpay_id,
)

_ORDER_ITEMS = (
    with_people(select(*ITEM_COLUMNS).join(Person, Person.id == OrderItem.person_id))
    .where(OrderItem.order_id == bindparam("order_id"))
    .order_by(OrderItem.id)
)


def order_items(session: Session, order_id: int) -> list[ItemRow]:
    """The items of an order, each with its person's ID number, name and place."""
    rows = session.connection().execute(_ORDER_ITEMS, {"order_id": order_id})
    return [ItemRow(*row) for row in rows]


_PAID = select(Contribution.person_id, Contribution.insurance).where(
    Contribution.year == bindparam("year"),
    Contribution.status == PAID_LITERAL,  # the partial index serves the generic plan
    Contribution.person_id.in_(bindparam("person_ids", expanding=True)),
)


def already_paid(
    session: Session, *, year: int, keys: Iterable[tuple[int, str]]
) -> set[tuple[int, str]]:
    """Which (person, insurance) of `keys` already have a paid contribution for `year`."""
    wanted = set(keys)
    if not wanted:
        return set()
    rows = session.connection().execute(
        _PAID, {"year": year, "person_ids": sorted({pid for pid, _ in wanted})}
    )
    return {(pid, ins) for pid, ins in rows if (pid, ins) in wanted}


def paid_on(paid_at: datetime) -> date:
    """The Beijing date a payment counts on; with APP_TODAY pinned (demo), that date."""
    from api.clock import _pinned

    pinned = _pinned()
    return pinned if pinned is not None else paid_at.astimezone(BEIJING).date()


def book_contributions(
    session: Session,
    *,
    order_id: int,
    household_id: int,
    out_trade_no: str | None,
    transaction_id: str | None,
    items: Sequence[ItemRow],
    paid_at: datetime,
    source: str,
) -> list[int]:
    """One `Contribution` per item plus its tax record (outbox), in the caller's transaction.

    A concurrent payment of the same premium makes the INSERT fail on the partial unique
    index: the caller rolls back and re-applies, and then sees the overlap. Returns the ids.
    """
    if not items:
        return []
    from api.payments.pricing import item_benefit_start  # pricing uses this module too

    day = paid_on(paid_at)
    now = utcnow()
    rows = [
        {
            "person_id": item.person_id,
            "household_id": household_id,
            "insurance": item.insurance,
            "year": item.year,
            "amount_fen": item.amount_fen,
            "government_pays_fen": item.government_pays_fen,
            "subsidy_fen": item.subsidy_fen,
            "pension_tier": item.pension_tier,
            "source": source,
            "order_id": order_id,
            "order_item_id": item.id,
            "out_trade_no": out_trade_no,
            "channel_transaction_id": transaction_id,
            "paid_at": paid_at,
            "late": item.late,
            "benefit_start": item_benefit_start(
                year=item.year,
                insurance=item.insurance,
                kind=item.kind,
                birth_date=item.birth_date,
                paid_on=day,
            ),
            "status": ContributionStatus.PAID.value,
            "kind": item.kind,
            "created_at": now,
        }
        for item in items
    ]
    ids = _insert_contributions(session, rows)
    enqueue_contribution_events(
        session,
        [
            _event("contribution.paid", contribution_id, row, item)
            for contribution_id, item, row in zip(ids, items, rows, strict=True)
        ],
    )
    return ids


def _insert_contributions(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """INSERT the rows (all of one order) and return their ids, in the rows' order."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return list(connection.execute(_CONTRIBUTION_INSERT, rows).scalars())
    params = unnest_params(rows, per_row=_PER_ITEM, shared=_PER_ORDER)
    # RETURNING pairs each id with its order item: no reliance on the order rows come back in.
    booked = dict(
        (item_id, contribution_id)
        for contribution_id, item_id in connection.execute(_PG_CONTRIBUTION_INSERT, params)
    )
    return [booked[row["order_item_id"]] for row in rows]


_TABLE: Any = Contribution.__table__
# SQLite: one multi-row INSERT … RETURNING (Core, not the ORM's bulk INSERT).
_CONTRIBUTION_INSERT = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)
# PostgreSQL: the same rows as arrays (`api.db.unnest_insert`, prepared once per connection;
# the VALUES form was a sixth of a notification's Python time, psycopg re-parsing its SQL).
_PER_ITEM = (
    "person_id",
    "insurance",
    "year",
    "amount_fen",
    "government_pays_fen",
    "subsidy_fen",
    "pension_tier",
    "order_item_id",
    "late",
    "benefit_start",
    "kind",
)
_PER_ORDER = (
    "household_id",
    "source",
    "order_id",
    "out_trade_no",
    "channel_transaction_id",
    "paid_at",
    "status",
    "created_at",
)
_PG_CONTRIBUTION_INSERT = unnest_insert(
    _TABLE, per_row=_PER_ITEM, shared=_PER_ORDER, returning=("id", "order_item_id")
)


def _event(
    event: str,
    contribution_id: int,
    row: dict[str, Any],
    who: ItemRow | _Who,
    reason: str | None = None,
) -> ContributionEvent:
    return ContributionEvent(
        event=event,  # type: ignore[arg-type]
        contribution_id=contribution_id,
        year=row["year"],
        insurance=row["insurance"],
        id_number=who.id_number,
        name=who.name,
        household_id=row["household_id"],
        household_no=who.household_no,
        town_code=who.town_code,
        village_code=who.village_code,
        pension_tier=row["pension_tier"],
        amount_fen=row["amount_fen"],
        government_pays_fen=row["government_pays_fen"],
        subsidy_fen=row["subsidy_fen"],
        source=row["source"],
        channel_transaction_id=row["channel_transaction_id"],
        out_trade_no=row["out_trade_no"],
        paid_at=row["paid_at"],
        late=row["late"],
        benefit_start=row["benefit_start"],
        reason=reason,
    )


@dataclass(frozen=True)
class _Who:
    id_number: str
    name: str
    household_no: str
    village_code: str
    town_code: str


def reverse_contributions(
    session: Session, contribution_ids: Sequence[int], *, reason: str
) -> list[int]:
    """Mark paid contributions reversed (refunded) and queue a reversal record for each.

    Conditional on `status = paid`: a contribution is reversed once, whoever gets there first.
    """
    if not contribution_ids:
        return []
    now = utcnow()
    reversed_ids = list(
        session.scalars(
            update(Contribution)
            .where(
                Contribution.id.in_(contribution_ids),
                Contribution.status == ContributionStatus.PAID,
            )
            .values(status=ContributionStatus.REVERSED, reversed_at=now, reversal_reason=reason)
            .returning(Contribution.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not reversed_ids:
        return []
    from api.backpay import service as backpay  # a refunded back-payment is no longer paid

    backpay.contributions_reversed(session, reversed_ids)
    columns = [c for c in Contribution.__table__.columns]
    query = with_people(
        select(*columns, *_WHO).join(Person, Person.id == Contribution.person_id)
    ).where(Contribution.id.in_(reversed_ids))
    events = []
    for row in session.execute(query.order_by(Contribution.id)):
        values = dict(zip([c.name for c in columns], row[: len(columns)], strict=True))
        who = _Who(*row[len(columns) :])
        events.append(_event("contribution.reversed", values["id"], values, who, reason))
    enqueue_contribution_events(session, events)
    return reversed_ids
