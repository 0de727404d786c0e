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
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from api.clock import BEIJING
from api.errors import InvalidInput
from api.households.models import Enrollment, Person
from api.payments import ledger
from api.policy import Policy, load_policy, rules
from api.policy.errors import RuleError, UnknownYear
from api.policy.rules import PersonFacts


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


def _policy(year: int) -> Policy:
    try:
        return load_policy(year)
    except UnknownYear as exc:
        raise InvalidInput(
            f"{year} 年度缴费政策尚未发布", errors={"json": {"year": ["没有该年度的缴费政策"]}}
        ) from exc


def collection_open(*, year: int, on: date) -> bool:
    """Whether residents may pay for `year` on `on` (the policy's phases; late payment is open
    until the end of the insurance year)."""
    return rules.collection_open(_policy(year), on)


def price_valid_for(*, year: int, on: date, late: bool, now: datetime) -> timedelta:
    """How long an order priced at app time `now` (on the Beijing date `on`) may be paid at
    that price: an on-time order must not be paid after the window closes (it would then owe
    the late amount), so at most until the end of the window's last day (Beijing midnight); a
    late order until the end of the insurance year. A duration, so a demo with APP_TODAY
    pinned gets the same cap as production."""
    policy = _policy(year)
    last_day = policy.coverage_end if late else policy.window_end
    end = datetime.combine(last_day + timedelta(days=1), time(0), BEIJING)
    return max(timedelta(0), end - now)


def benefit_start(*, year: int, insurance: str, paid_on: date) -> date:
    """When cover begins (DOMAIN.md 逾期): medical paid late starts `late_benefit_delay_days`
    (30) after payment; pension follows `pension.late_rule` ("none" in 2020: with the year)."""
    policy = _policy(year)
    if insurance == "pension" and policy.pension.late_rule == "none":
        return policy.coverage_start
    return rules.benefit_start(policy, paid_on)


def facts_of(person: Person, year: int, policy: Policy) -> PersonFacts:
    """The rules' view of a registered person, with the tier chosen for `year`.

    Tolerant of stored data the year's policy no longer accepts, exactly as the premiums page
    is: unknown categories are ignored, and a tier the person may no longer take reads as "no
    tier chosen" (so nothing is charged for it until the family chooses again).
    """
    tier = _tier(person.enrollments, year)
    facts = PersonFacts(
        birth_date=person.birth_date,
        categories=frozenset(c.category for c in person.categories) & policy.category_keys,
        student=person.student,
        employee_pension=person.employee_pension,
        employee_medical=person.employee_medical,
        deceased_on=person.deceased_on,
        residence_permit=person.residence_permit,
        pension_tier=tier,
    )
    if tier is not None:
        try:
            rules.check_tier(policy, facts, tier)
        except RuleError:
            facts = replace(facts, pension_tier=None)
    return facts


def dues(
    session: Session, *, household_id: int, year: int, on: date, insurances: Sequence[str]
) -> list[Due]:
    """Every premium the household owes now for `insurances`, per the rules above."""
    policy = _policy(year)
    members = session.scalars(
        select(Person)
        .where(Person.household_id == household_id)
        .options(selectinload(Person.categories), selectinload(Person.enrollments))
        .order_by(Person.id)
    ).all()
    result: list[Due] = []
    for person in members:
        quote = rules.quote_member(policy, facts_of(person, year, policy), on)
        medical, pension = quote.medical, quote.pension
        if "medical" in insurances and medical.due and medical.owed_fen > 0:
            result.append(
                Due(
                    person_id=person.id,
                    insurance="medical",
                    amount_fen=medical.owed_fen,
                    government_pays_fen=medical.government_pays_fen,
                    subsidy_fen=medical.subsidy_fen,
                    pension_tier=None,
                    late=medical.late,
                    rule=medical.rule,
                )
            )
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
                    amount_fen=pension.owed_fen,
                    government_pays_fen=pension.government_pays_fen,
                    subsidy_fen=pension.subsidy_fen,
                    pension_tier=pension.tier,
                    late=rules.is_late(policy, on),
                    rule=pension.rule,
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
