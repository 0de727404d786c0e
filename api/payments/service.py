"""Read-side payments services: an order as its household sees it, what a household has paid
(the hook `api.households.service` calls), and the callback log for finance.

Plain keyword-only functions taking the session; nothing here writes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Select, bindparam, literal_column, select
from sqlalchemy.orm import Session, selectinload

from api.clock import BEIJING
from api.documents.cells import csv_row
from api.errors import NotFound
from api.extensions.cursor import keyset, page
from api.households.models import Person
from api.payments.models import (
    PAID_LITERAL,
    ChannelNotification,
    Contribution,
    OrderStatus,
    PaymentOrder,
    Refund,
)
from api.payments.orders import household_visible


def _mask_name(name: str) -> str:
    try:
        from api.policy.idnumber import mask_name
    except ImportError:  # pragma: no cover - the policy package always ships it
        return name[:1] + "*" * max(0, len(name) - 1)
    return str(mask_name(name))


def order_for_account(session: Session, *, account_id: int, out_trade_no: str) -> PaymentOrder:
    """The order if its household is bound to the account; 404 otherwise (never 403)."""
    order = session.scalars(
        select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no)
    ).one_or_none()
    if order is None or not household_visible(
        session, account_id=account_id, household_id=order.household_id
    ):
        raise NotFound("未找到该订单", code="order_not_found")
    return order


def order_view(session: Session, order: PaymentOrder, *, account_id: int) -> dict[str, Any]:
    """The order with its items (each with its contribution, if booked) and its refunds.

    Names as on the household's premiums page (`households.service.member_identity`): the
    resident's own in full, the others masked, each with the birth year so two members
    masked alike (刘*, 刘*) can be told apart.
    """
    from api.households.service import bound_person_id  # households owns the bindings

    items = list(order.items)
    people = {
        pid: (name, birth_date)
        for pid, name, birth_date in session.execute(
            select(Person.id, Person.name, Person.birth_date).where(
                Person.id.in_({i.person_id for i in items})
            )
        ).all()
    }
    viewer = bound_person_id(session, account_id=account_id, household_id=order.household_id)
    contributions = {
        c.order_item_id: c
        for c in session.scalars(
            select(Contribution).where(Contribution.order_id == order.id)
        ).all()
    }
    refunds = session.scalars(
        select(Refund)
        .where(Refund.order_id == order.id)
        .options(selectinload(Refund.items))
        .order_by(Refund.id)
    ).all()
    return {
        "out_trade_no": order.out_trade_no,
        "status": order.status,
        "amount_fen": order.amount_fen,
        "refunded_fen": order.refunded_fen,
        "channel": order.channel,
        "scene": order.scene,
        "household_id": order.household_id,
        "year": order.year,
        "late": order.late,
        "pay_params": order.pay_params if order.status == OrderStatus.OPEN else None,
        "expires_at": order.expires_at,
        "created_at": order.created_at,
        "paid_at": order.paid_at,
        "items": [
            {
                "person_id": i.person_id,
                "name": (
                    people[i.person_id][0]
                    if i.person_id == viewer
                    else _mask_name(people[i.person_id][0])
                ),
                "is_self": i.person_id == viewer,
                "birth_year": people[i.person_id][1].year,
                "insurance": i.insurance,
                "year": i.year,
                "amount_fen": i.amount_fen,
                "government_pays_fen": i.government_pays_fen,
                "subsidy_fen": i.subsidy_fen,
                "pension_tier": i.pension_tier,
                "late": i.late,
                "rule": i.rule,
                "kind": i.kind,
                "benefit_start": i.benefit_start,
                "contribution": _contribution(contributions.get(i.id)),
            }
            for i in items
        ],
        "refunds": [refund_view(r, order.out_trade_no) for r in refunds],
    }


def _contribution(c: Contribution | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "status": c.status,
        "paid_at": c.paid_at,
        "benefit_start": c.benefit_start,
        "late": c.late,
    }


def refund_view(refund: Refund, out_trade_no: str) -> dict[str, Any]:
    return {
        "out_refund_no": refund.out_refund_no,
        "out_trade_no": out_trade_no,
        "amount_fen": refund.amount_fen,
        "reason": refund.reason,
        "note": refund.note,
        "state": refund.state,
        "created_at": refund.created_at,
        "succeeded_at": refund.succeeded_at,
        "items": [
            {"person_id": i.person_id, "insurance": i.insurance, "amount_fen": i.amount_fen}
            for i in refund.items
        ],
    }


# The households hook ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PaidItem:
    """One paid premium of a household: who, which insurance, how, and through which order."""

    person_id: int
    insurance: str
    year: int
    amount_fen: int
    source: str
    paid_at: datetime
    late: bool
    benefit_start: date
    out_trade_no: str | None
    contribution_id: int


def paid_items(session: Session, *, household_id: int, year: int) -> list[PaidItem]:
    """Every premium of the household's members paid for `year` (contributions in `paid`).

    By person, not by household id: a member who moved households keeps what was paid.
    """
    rows = session.scalars(
        select(Contribution)
        .join(Person, Person.id == Contribution.person_id)
        .where(
            Person.household_id == household_id,
            Contribution.year == year,
            Contribution.status == _PAID_SQL_STATUS,  # the partial index, see `_PAID_KEYS`
        )
        .order_by(Contribution.person_id, Contribution.insurance)
    ).all()
    return [
        PaidItem(
            person_id=c.person_id,
            insurance=c.insurance,
            year=c.year,
            amount_fen=c.amount_fen,
            source=c.source,
            paid_at=c.paid_at,
            late=c.late,
            benefit_start=c.benefit_start,
            out_trade_no=c.out_trade_no,
            contribution_id=c.id,
        )
        for c in rows
    ]


# The status is a literal in the SQL (`PAID_LITERAL`), not a parameter: a parameter
# `status = $3` cannot prove the partial index's predicate (tests/perf/test_request_plans.py).
_PAID_SQL_STATUS = PAID_LITERAL
_INSURANCES = ("medical", "pension")


def _paid_keys_statement() -> Select[Any]:
    persons = Person.__table__
    year: Any = bindparam("year")
    return select(
        persons.c.id,
        *(paid_exists(persons.c.id, insurance=i, year=year).label(i) for i in _INSURANCES),
    ).where(persons.c.household_id == bindparam("household_id"))


_PAID_KEYS: Select[Any] | None = None


def paid_keys(session: Session, *, household_id: int, year: int) -> set[tuple[int, str]]:
    """(person_id, insurance) of the household's members paid for `year`, any source, not
    reversed: what `api.households.service.paid_items` answers.

    One statement driven by the members: `persons.household_id`, then per member and insurance
    one probe of the partial unique index (`paid_exists`). Written as a join, PostgreSQL's
    generic plan started from contributions instead and walked every paid entry of the year
    (77 ms per call at full scale when statistics were stale)."""
    global _PAID_KEYS
    if _PAID_KEYS is None:
        _PAID_KEYS = _paid_keys_statement()
    rows = session.connection().execute(_PAID_KEYS, {"household_id": household_id, "year": year})
    return {
        (pid, insurance)
        for pid, *flags in rows
        for insurance, flag in zip(_INSURANCES, flags, strict=True)
        if flag is not None
    }


def paid_exists(person_id: ColumnElement[Any], *, insurance: str, year: Any) -> ScalarSelect[Any]:
    """A correlated probe: the source (wechat, alipay, agent, counter, government) if
    `person_id` has a contribution in status paid for `insurance` and `year` (not reversed),
    else NULL. The same rule as `paid_keys`, as a column
    for another module's statement: the premiums page reads members and their paid items in
    one round trip (bench/http_throughput.py) without importing payments' models.

    A scalar subquery, not EXISTS: PostgreSQL may turn an EXISTS into a hashed subplan that
    reads every paid contribution of the year to build its hash table (it did, under a generic
    plan with no statistics); a scalar subquery is always a probe per row. It returns at most
    one row because the partial unique index (person_id, insurance, year) WHERE status = 'paid'
    allows one; the literal status lets that index serve it."""
    contributions = Contribution.__table__
    return (
        select(contributions.c.source)
        .select_from(contributions)
        .where(
            contributions.c.person_id == person_id,
            contributions.c.insurance == literal_column(f"'{_INSURANCE_SQL[insurance]}'"),
            contributions.c.year == year,
            contributions.c.status == _PAID_SQL_STATUS,
        )
        .scalar_subquery()
    )


_INSURANCE_SQL = {"medical": "medical", "pension": "pension"}  # only known words reach SQL


def open_order_of(session: Session, *, household_id: int) -> PaymentOrder | None:
    """The household's order in progress, if any (for its premium page)."""
    return session.scalars(
        select(PaymentOrder).where(
            PaymentOrder.household_id == household_id,
            PaymentOrder.status.in_((OrderStatus.CREATED, OrderStatus.OPEN)),
        )
    ).first()


# The callback log for finance -------------------------------------------------------------------


def _beijing_start(day: date) -> datetime:
    return datetime.combine(day, time(0), BEIJING)


def notifications_query(
    *,
    channel: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    out_trade_no: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> Select[Any]:
    query = select(ChannelNotification)
    if channel:
        query = query.where(ChannelNotification.channel == channel)
    if outcome:
        query = query.where(ChannelNotification.outcome == outcome)
    if reason:
        query = query.where(ChannelNotification.reason == reason)
    if out_trade_no:
        query = query.where(ChannelNotification.out_trade_no == out_trade_no)
    if date_from:
        query = query.where(ChannelNotification.received_at >= _beijing_start(date_from))
    if date_to:
        query = query.where(
            ChannelNotification.received_at < _beijing_start(date_to + timedelta(days=1))
        )
    return query


def list_notifications(
    session: Session, *, page_args: dict[str, Any], **filters: Any
) -> tuple[list[ChannelNotification], str | None]:
    """One page of the callback log by id cursor (`api.extensions.cursor`): (rows, next_cursor).

    No total: counting a log that grows by the second on every page read all of it."""
    query = keyset(notifications_query(**filters), ChannelNotification.id, page_args)
    rows = session.scalars(query).all()
    return page(rows, page_args, id_of=lambda n: n.id)


def notifications_for_csv(session: Session, **filters: Any) -> list[ChannelNotification]:
    """Every matching row, newest first, at most CSV_LIMIT."""
    query = notifications_query(**filters).order_by(ChannelNotification.id.desc())
    return list(session.scalars(query.limit(CSV_LIMIT)).all())


CSV_COLUMNS = (
    "id",
    "received_at",
    "channel",
    "path",
    "kind",
    "outcome",
    "reason",
    "signature_valid",
    "out_trade_no",
    "out_refund_no",
    "transaction_id",
    "amount_fen",
    "remote_addr",
    "detail",
    "body",
)
CSV_LIMIT = 100_000


def notifications_csv(rows: Iterable[ChannelNotification]) -> str:
    """CSV for finance (UTF-8 with BOM so Excel reads the Chinese), times in Beijing."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for n in rows:
        writer.writerow(
            csv_row(
                [
                    n.id,
                    n.received_at.astimezone(BEIJING).isoformat(timespec="seconds"),
                    n.channel,
                    n.path,
                    n.kind or "",
                    n.outcome,
                    n.reason or "",
                    "" if n.signature_valid is None else int(n.signature_valid),
                    n.out_trade_no or "",
                    n.out_refund_no or "",
                    n.transaction_id or "",
                    "" if n.amount_fen is None else n.amount_fen,
                    n.remote_addr or "",
                    n.detail or "",
                    n.body_text,
                ]
            )
        )
    return out.getvalue()
