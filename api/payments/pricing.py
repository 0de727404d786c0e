"""Pricing 定价: what a household owes now, from the policy and the household's state only.

The one place payments asks the policy (`api.policy`) for amounts, so an order's items are
priced exactly as the household's premium page shows them (DESIGN.md "The payment path" 1):
- medical (DOMAIN.md "The household is the unit"): every member the policy says is due and
  who owes more than 0 and is not yet paid — all of them together, or none;
- pension: members eligible with a chosen tier (a tier-100 member of a 代缴 category with no
  choice owes 0) who owe more than 0 and are not yet paid;
- paid means a `Contribution` in status `paid` for that person × insurance × year;
- the late rule (逾期) is the policy's, on the Beijing date `on`;
- newborns (DOMAIN.md "Newborns"): the rules' newborn terms; a newborn whose 90 days cross
  into the year also owes its birth year's premium, an item of that year only when that
  year's policy file exists (otherwise the premiums page names it as owed at the counter);
- back-payments 补缴 (asked for with "backpay" among the insurances): each approved, unpaid,
  unexpired approval of a member (`api.backpay.service.payable`) at exactly the approved
  amount, as an item of its own year and kind `backpay`.
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
    year: int
    benefit_start: date | None = None
    kind: str = "premium"
    backpay_id: int | None = None
    valid_until: date | None = None  # the last Beijing day this price holds (a back-payment)


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


def valid_until(last_day: date, *, now: datetime) -> timedelta:
    """How long until the end (Beijing midnight) of `last_day`: an order holding a
    back-payment must not outlive the approval's expiry."""
    end = datetime.combine(last_day + timedelta(days=1), time(0), BEIJING)
    return max(timedelta(0), end - now)


def benefit_start(*, year: int, insurance: str, paid_on: date) -> date:
    """When cover begins (DOMAIN.md 逾期): medical paid late starts `late_benefit_delay_days`
    (30) after payment; pension follows `pension.late_rule` ("none" in 2020: with the year)."""
    policy = _policy(year)
    if insurance == "pension" and policy.pension.late_rule == "none":
        return policy.coverage_start
    return rules.benefit_start(policy, paid_on)


def item_benefit_start(
    *, year: int, insurance: str, kind: str, birth_date: date, paid_on: date
) -> date:
    """The cover start of a contribution paid on `paid_on`: a back-payment credits its own
    past year from its first day (the bureau's decision; no policy file needed); medical
    follows the rules with the person's birth date (a newborn's cover, DOMAIN.md "Newborns");
    otherwise `benefit_start`."""
    if kind == "backpay":
        return date(year, 1, 1)
    if insurance == "medical":
        facts = PersonFacts(birth_date=birth_date)
        return rules.medical_benefit_start(_policy(year), facts, paid_on)
    return benefit_start(year=year, insurance=insurance, paid_on=paid_on)


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
        facts = facts_of(person, year, policy)
        quote = rules.quote_member(policy, facts, on)
        medical, pension = quote.medical, quote.pension
        if "medical" in insurances and medical.due and medical.owed_fen > 0:
            result.append(_medical_due(person.id, medical, year))
        if "medical" in insurances and medical.birth_year is not None:
            birth = _birth_year_due(person.id, facts, medical.birth_year, on)
            if birth is not None:
                result.append(birth)
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
                    year=year,
                    benefit_start=benefit_start(year=year, insurance="pension", paid_on=on),
                )
            )
    if "backpay" in insurances:
        result.extend(_backpay_dues(session, [p.id for p in members], on, result))
    return _unpaid(session, result)


def _unpaid(session: Session, dues: list[Due]) -> list[Due]:
    """`dues` without those already paid (a paid contribution of that person × insurance ×
    year), asked once per year."""
    paid: set[tuple[int, str, int]] = set()
    for y in sorted({d.year for d in dues}):
        keys = ((d.person_id, d.insurance) for d in dues if d.year == y)
        paid |= {(pid, ins, y) for pid, ins in ledger.already_paid(session, year=y, keys=keys)}
    return [d for d in dues if (d.person_id, d.insurance, d.year) not in paid]


def _birth_year_due(person_id: int, facts: PersonFacts, birth_year: int, on: date) -> Due | None:
    """A newborn's birth-year premium, priced by that year's own policy file; None when the
    file does not exist (owed at the counter) or the newborn owes nothing there."""
    try:
        policy = load_policy(birth_year)
    except UnknownYear:
        return None
    known = replace(facts, categories=facts.categories & policy.category_keys, pension_tier=None)
    medical = rules.quote_medical(policy, known, on)
    if not medical.due or medical.owed_fen <= 0:
        return None
    return _medical_due(person_id, medical, birth_year)


def _medical_due(person_id: int, medical: rules.MedicalQuote, year: int) -> Due:
    """The medical item of `year` as the rules priced it (the year's own, or a newborn's
    birth year under that year's policy)."""
    return Due(
        person_id=person_id,
        insurance="medical",
        amount_fen=medical.owed_fen,
        government_pays_fen=medical.government_pays_fen,
        subsidy_fen=medical.subsidy_fen,
        pension_tier=None,
        late=medical.late,
        rule=medical.rule,
        year=year,
        benefit_start=medical.benefit_start,
    )


def _backpay_dues(
    session: Session, person_ids: list[int], on: date, premiums: Sequence[Due]
) -> list[Due]:
    """The members' payable back-payments at their approved amounts. One whose person ×
    insurance × year is already an item here is left out (one contribution per year)."""
    from api.backpay import service as backpay  # backpay reaches households, not payments

    taken = {(d.person_id, d.insurance, d.year) for d in premiums}
    return [
        Due(
            person_id=b.person_id,
            insurance=b.insurance,
            amount_fen=b.amount_fen,
            government_pays_fen=0,
            subsidy_fen=0,
            pension_tier=b.pension_tier,
            # The tax record's `late` reads "补缴/逾期: paid after the collection window":
            # a back-payment is that by definition (the record has no other type field).
            late=True,
            rule=backpay.RULE,
            year=b.year,
            benefit_start=date(b.year, 1, 1),
            kind="backpay",
            backpay_id=b.approval_id,
            valid_until=b.expires_on,
        )
        for b in backpay.payable(session, person_ids=person_ids, on=on)
        if (b.person_id, b.insurance, b.year) not in taken
    ]


def _tier(enrollments: Sequence[Enrollment], year: int) -> int | None:
    for e in enrollments:
        if e.insurance == "pension" and e.year == year:
            return e.pension_tier
    return None
