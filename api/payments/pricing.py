"""Pricing 定价: what a household owes now, from the policy and the household's state only.

The one place payments asks the policy (`api.policy`) for amounts, so an order's items are
priced exactly as the household's premium page shows them (DESIGN.md "The payment path" 1):
- medical (DOMAIN.md "The household is the unit"): every member the policy says is due and
  who owes more than 0 and is not yet paid — all of them together, or none;
- pension: members eligible with a chosen tier (a tier-100 member of a 代缴 category with no
  choice owes 0) who owe more than 0 and are not yet paid;
- paid means a `Contribution` in status `paid` for that person × insurance × year;
- the late rule (逾期) is the policy's, on the Beijing date `on`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from api.clock import BEIJING
from api.households.models import Enrollment, Person
from api.payments import ledger


@dataclass(frozen=True)
class Due:
    """One premium the household owes now."""

    person_id: int
    insurance: str
    amount_fen: int
    government_pays_fen: int
    subsidy_fen: int
    pension_tier: int | None
    late: bool
    rule: str


def _policy(year: int):  # type: ignore[no-untyped-def]
    from api.policy import load_policy

    return load_policy(year)


def collection_open(*, year: int, on: date) -> bool:
    """Whether residents may pay for `year` on `on` (policy phases; late payment included)."""
    from api.policy import rules

    return bool(rules.collection_open(_policy(year), on))


def is_late(*, year: int, on: date) -> bool:
    from api.policy import rules

    return bool(rules.is_late(_policy(year), on))


def price_valid_until(*, year: int, on: date, late: bool) -> datetime:
    """Until when an order priced on `on` may be paid at that price: an on-time order must
    not be paid after the window closes (it would then owe the late amount), so it expires
    at the end of the window's last day at the latest (Beijing midnight)."""
    if late:
        return datetime.max.replace(tzinfo=UTC)
    policy = _policy(year)
    last_day: date = policy.window_end
    return datetime.combine(last_day + timedelta(days=1), time(0), BEIJING).astimezone(UTC)


def benefit_start(*, year: int, insurance: str, paid_on: date, late: bool) -> date:
    """When cover begins: the policy's rule (late medical: paid_on + 30 days, DOMAIN.md)."""
    from api.policy import rules

    return rules.benefit_start(_policy(year), paid_on, late=late, insurance=insurance)  # type: ignore[no-any-return]


def dues(
    session: Session, *, household_id: int, year: int, on: date, insurances: Sequence[str]
) -> list[Due]:
    """Every premium the household owes now for `insurances`, per the rules above."""
    from api.policy import rules
    from api.policy.rules import PersonFacts

    policy = _policy(year)
    members = session.scalars(
        select(Person)
        .where(Person.household_id == household_id)
        .options(selectinload(Person.categories), selectinload(Person.enrollments))
        .order_by(Person.id)
    ).all()
    late = bool(rules.is_late(policy, on))
    result: list[Due] = []
    for person in members:
        tier = _tier(person.enrollments, year)
        facts = PersonFacts(
            id_number=person.id_number,
            name=person.name,
            categories=sorted(person.category_keys),
            student=person.student,
            employee_pension=person.employee_pension,
            employee_medical=person.employee_medical,
            residence_permit=person.residence_permit,
            deceased_on=person.deceased_on,
            pension_tier=tier,
        )
        quote = rules.quote_member(policy, facts, on)
        if "medical" in insurances and quote.medical.due and quote.medical.owed_fen > 0:
            result.append(
                Due(
                    person_id=person.id,
                    insurance="medical",
                    amount_fen=int(quote.medical.owed_fen),
                    government_pays_fen=int(quote.medical.government_pays_fen),
                    subsidy_fen=0,
                    pension_tier=None,
                    late=late,
                    rule=str(quote.medical.rule),
                )
            )
        pension = quote.pension
        if (
            "pension" in insurances
            and pension.eligible
            and pension.tier is not None
            and pension.owed_fen > 0
        ):
            result.append(
                Due(
                    person_id=person.id,
                    insurance="pension",
                    amount_fen=int(pension.owed_fen),
                    government_pays_fen=int(pension.government_pays_fen),
                    subsidy_fen=int(pension.subsidy_fen),
                    pension_tier=int(pension.tier),
                    late=late,
                    rule=str(pension.rule),
                )
            )
    paid = ledger.already_paid(
        session, year=year, keys=((d.person_id, d.insurance) for d in result)
    )
    return [d for d in result if (d.person_id, d.insurance) not in paid]


def _tier(enrollments: Sequence[Enrollment], year: int) -> int | None:
    for e in enrollments:
        if e.insurance == "pension" and e.year == year:
            return e.pension_tier
    return None
