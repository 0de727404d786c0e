"""Contributions summed for the progress view 征缴进度 (`api.oversight`): one grouped query.

Counted: the year's premiums (`kind = premium`; a back-payment 补缴 belongs to a past year's
books) that are paid now (`status = paid`): a refunded premium is `reversed` and no longer
counts, on whatever day it had been paid. One row per (town or village, Beijing day of
`paid_at`, insurance, source) with the persons (a paid premium is unique per person ×
insurance × year, so rows are persons), the new enrollees among them, and the premium booked in fen
(`amount_fen + government_pays_fen`: what the payer paid plus what the government paid for
them, the same reading as the tax record).

New enrollee 新增 (pension only; the project's reading, docs/oversight.md): a person whose
pension premium of the year is paid and who has no paid pension contribution of the year before
in this system. The NOT EXISTS probe walks the unique partial index (person, insurance, year)
WHERE status = 'paid'.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Date, and_, case, cast, exists, func, literal, select
from sqlalchemy.orm import Session, aliased

from api.households.models import Household, Village
from api.payments.models import PAID_LITERAL, Contribution


@dataclass(frozen=True)
class ProgressRow:
    unit_id: int  # town id or village id, as asked
    day: date  # Beijing day of paid_at
    insurance: str
    source: str
    persons: int
    new_persons: (
        int  # pension: of `persons`, those with no paid pension contribution the year before
    )
    amount_fen: int


def _beijing_day(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("Asia/Shanghai", column), Date)
    # SQLite keeps the UTC instant as text without a zone; Beijing has had no DST since 1991.
    return func.date(column, "+8 hours")


def progress_rows(
    session: Session,
    *,
    year: int,
    before: datetime,
    by: Literal["town", "village"],
    village_ids: Collection[int] | None = None,
) -> list[ProgressRow]:
    """Persons and fen per unit, Beijing day, insurance, source and new flag, paid before
    `before` (exclusive; the caller passes the end of the as-of Beijing day)."""
    c = Contribution
    prior = aliased(Contribution)
    had_prior = exists().where(
        prior.person_id == c.person_id,
        prior.insurance == "pension",
        prior.year == year - 1,
        prior.status == PAID_LITERAL,
    )
    # A sum, not a group key: the groups stay (unit, day, insurance, source), few enough for
    # one hash aggregate (bench/oversight.py).
    new = func.sum(case((and_(c.insurance == "pension", ~had_prior), literal(1)), else_=literal(0)))
    unit = Village.town_id if by == "town" else Household.village_id
    day = _beijing_day(session, c.paid_at)
    query = (
        select(
            unit.label("unit"),
            day.label("day"),
            c.insurance,
            c.source,
            func.count().label("persons"),
            new.label("new"),
            func.sum(c.amount_fen + c.government_pays_fen).label("fen"),
        )
        .join(Household, Household.id == c.household_id)
        .where(
            c.year == year,
            c.status == PAID_LITERAL,
            c.kind == "premium",
            c.paid_at < before,
        )
        .group_by(unit, day, c.insurance, c.source)
    )
    if by == "town":
        query = query.join(Village, Village.id == Household.village_id)
    if village_ids is not None:
        query = query.where(Household.village_id.in_(sorted(village_ids)))
    rows = []
    for r in session.execute(query):
        d = r.day if isinstance(r.day, date) else date.fromisoformat(r.day)
        rows.append(
            ProgressRow(
                unit_id=int(r.unit),
                day=d,
                insurance=r.insurance,
                source=r.source,
                persons=int(r.persons),
                new_persons=int(r.new or 0),
                amount_fen=int(r.fen or 0),
            )
        )
    return rows
