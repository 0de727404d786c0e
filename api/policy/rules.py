"""The premium rules: pure functions over (policy, person, date). No database, no clock.

DOMAIN.md is the source. Medical (居民医疗): due for everyone not in employee medical and alive;
the household is the unit; government-paid groups owe 0; subsidies reduce what is owed; after
the window the payer owes the full cost including the government subsidy and benefits start 30
days after payment; a newborn (DOMAIN.md "Newborns") pays the personal standard, never the
late terms, covered from birth when enrolled within 90 days. Pension (居民养老): ages 16–59
on the reference date, not students, not in employee pension; 12 tiers; the 100 tier only
for the hardship groups, paid for them by district finance; the subsidy is credited to the
account and never reduces the payment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from api.policy.errors import NotEligible, TierNotAllowed, UnknownCategory, UnknownTier
from api.policy.idnumber import age_on
from api.policy.model import Phase, Policy

RULE_LABELS: dict[str, str] = {
    "medical.standard": "按标准缴费",
    "medical.government": "个人缴费部分由政府代缴",
    "medical.subsidy": "享受医疗缴费补助",
    "medical.age_subsidy": "享受年龄段医疗缴费补助",
    "medical.late": "逾期缴费：全额缴纳（含各级政府补助），缴费满30日后享受待遇",
    "medical.newborn": "新生儿出生90日内参保：按个人标准缴费，自出生之日起享受待遇",
    "medical.newborn_after_90_days": (
        "新生儿出生90日后参保：按个人标准缴费，自缴费次月1日起享受待遇"
    ),
    "medical.employee_insured": "已参加职工医疗保险，无需缴纳",
    "medical.deceased": "已去世，无需缴纳",
    "medical.not_born": "尚未出生，无需缴纳",
    "pension.tier": "按所选档次缴费",
    "pension.tier100_government": "100元档次由区财政代缴",
    "pension.tier100_higher": "选择高于100元档次：区财政代缴100元，个人缴纳差额",
    "pension.too_young": "未满16周岁，不参加居民养老保险",
    "pension.too_old": "已满60周岁，按规定领取待遇，无需缴费",
    "pension.student": "在校学生不参加居民养老保险",
    "pension.employee_insured": "已参加职工养老保险，无需缴纳",
    "pension.deceased": "已去世，无需缴纳",
    "pension.tier_not_chosen": "尚未选择缴费档次",
}


def rule_label(rule: str, policy: Policy | None = None) -> str:
    """The Chinese label of a rule key such as `medical.government:dibao`.

    The part after `:` names the category (or age band) that decided the amount; with the
    policy at hand its Chinese label is appended, so a resident sees *why* (DOMAIN.md: "the
    quote names it").
    """
    base, _, detail = rule.partition(":")
    label = RULE_LABELS.get(base, rule)
    if detail and policy is not None:
        try:
            label = f"{label}（{policy.category_label(detail)}）"
        except KeyError:
            label = f"{label}（{detail}）"
    return label


@dataclass(frozen=True)
class PersonFacts:
    """What the rules need to know about one person (from the roster or a quote request)."""

    birth_date: date
    categories: frozenset[str] = frozenset()
    student: bool = False
    employee_pension: bool = False
    employee_medical: bool = False
    deceased_on: date | None = None
    residence_permit: bool = False
    pension_tier: int | None = None


@dataclass(frozen=True)
class MedicalQuote:
    """`late`: the payment is after the window (逾期) — for a newborn the terms are still the
    newborn's, which `rule` names. `benefit_start`: when cover begins if paid on the quoted day
    (None when not due). `birth_year`: a newborn whose 90 days cross into this year also owes
    the premium of this birth year (DOMAIN.md "Newborns"); None otherwise."""

    due: bool
    owed_fen: int
    government_pays_fen: int
    subsidy_fen: int
    late: bool
    rule: str
    benefit_start: date | None = None
    birth_year: int | None = None


@dataclass(frozen=True)
class PensionQuote:
    eligible: bool
    tier: int | None
    owed_fen: int
    government_pays_fen: int
    subsidy_fen: int
    rule: str


@dataclass(frozen=True)
class MemberQuote:
    age: int
    medical: MedicalQuote
    pension: PensionQuote


@dataclass(frozen=True)
class Totals:
    owed_fen: int
    medical_owed_fen: int
    pension_owed_fen: int
    government_pays_fen: int
    subsidy_fen: int


@dataclass(frozen=True)
class HouseholdQuote:
    members: tuple[MemberQuote, ...]
    totals: Totals


def unknown_categories(policy: Policy, categories: Iterable[str]) -> set[str]:
    """Keys the year's policy does not define (an import or request typo, or another year's)."""
    return set(categories) - policy.category_keys


def _refuse_unknown_categories(policy: Policy, categories: Iterable[str]) -> None:
    unknown = unknown_categories(policy, categories)
    if unknown:
        raise UnknownCategory(f"未知的人员类别：{'、'.join(sorted(unknown))}", field="categories")


def is_late(policy: Policy, on: date) -> bool:
    """Paying after the concentrated window (逾期缴费)."""
    return on > policy.window_end


def phase_on(policy: Policy, on: date) -> Phase | None:
    for phase in policy.phases:
        if phase.start <= on <= phase.end:
            return phase
    return None


def collection_open(policy: Policy, on: date) -> bool:
    """May a resident pay online on `on` (closed before the payment phase and after the year)."""
    phase = phase_on(policy, on)
    return phase is not None and phase.collection_open


def benefit_start(policy: Policy, paid_on: date) -> date:
    """Coverage starts with the year, or 30 days after a late payment (DOMAIN.md, 逾期)."""
    if is_late(policy, paid_on):
        delayed = paid_on + timedelta(days=policy.medical.late_benefit_delay_days)
        return max(delayed, policy.coverage_start)
    return policy.coverage_start


def newborn_rule(policy: Policy, person: PersonFacts, on: date) -> str | None:
    """`medical.newborn` (enrolled — paid — on `on`, within the days of birth, the last day
    included), `medical.newborn_after_90_days` (later), or None for a person who is not a
    newborn of this year (born before `medical.newborn.born_on_or_after`)."""
    newborn = policy.medical.newborn
    if person.birth_date < newborn.born_on_or_after:
        return None
    if on <= person.birth_date + timedelta(days=newborn.enrol_within_days):
        return "medical.newborn"
    return "medical.newborn_after_90_days"


def _cover_start(how: str, person: PersonFacts, paid_on: date) -> date:
    if how == "date_of_birth":
        return person.birth_date
    # "first_day_of_next_month" (the loader allows no other value)
    if paid_on.month == 12:
        return date(paid_on.year + 1, 1, 1)
    return date(paid_on.year, paid_on.month + 1, 1)


def medical_benefit_start(policy: Policy, person: PersonFacts, paid_on: date) -> date:
    """When medical cover begins for `person` paying on `paid_on`: a newborn's cover start
    (from birth within the days, else the policy's later start), otherwise `benefit_start`;
    never before the insurance year's `coverage_start`."""
    rule = newborn_rule(policy, person, paid_on)
    if rule is None:
        return benefit_start(policy, paid_on)
    newborn = policy.medical.newborn
    how = newborn.cover_within if rule == "medical.newborn" else newborn.cover_after
    return max(_cover_start(how, person, paid_on), policy.coverage_start)


def birth_year_owed(policy: Policy, person: PersonFacts, on: date) -> int | None:
    """The birth year whose premium a newborn also owes: born before this year's cover, the
    enrolment days reaching into it, and enrolled (on `on`) within them."""
    if newborn_rule(policy, person, on) != "medical.newborn":
        return None
    days = timedelta(days=policy.medical.newborn.enrol_within_days)
    if person.birth_date < policy.coverage_start <= person.birth_date + days:
        return person.birth_date.year
    return None


def _dead(person: PersonFacts, on: date) -> bool:
    return person.deceased_on is not None and person.deceased_on <= on


def quote_medical(policy: Policy, person: PersonFacts, on: date) -> MedicalQuote:
    """The medical premium of one person paying on `on` (DOMAIN.md "Medical premium").

    Readings:
    - not born on `on`, deceased on or before `on`, or in employee medical: not due, owes 0;
      a newborn is due from birth (the plan: newborns included).
    - a newborn of this year (`newborn_rule`, DOMAIN.md "Newborns") owes the personal standard
      on the on-time terms (its subsidies included), never the late terms, whenever it pays;
      the rule is `medical.newborn` or `medical.newborn_after_90_days` unless a subsidy rule
      decided the amount; `benefit_start` tells the cover (`medical_benefit_start`).
    - government-paid groups (代缴) owe 0 and the government pays the premium, late or not: the
      逾期 rule is about what a *payer* owes, and the department's batch settles these persons.
    - otherwise ONE rule applies, the most favourable (largest subsidy; ties go to category
      subsidies before age bands, then to the first key in sorted order); subsidies never stack
      and never take the amount below 0.
    - late (`on` > window_end): the premium plus the per-capita government subsidy, and no
      subsidy unless the file sets `late_keeps_subsidies` (a late payer owes the full cost).
    """
    med = policy.medical
    late = is_late(policy, on)
    if person.birth_date > on:
        return MedicalQuote(False, 0, 0, 0, late, "medical.not_born")
    if _dead(person, on):
        return MedicalQuote(False, 0, 0, 0, late, "medical.deceased")
    if person.employee_medical:
        return MedicalQuote(False, 0, 0, 0, late, "medical.employee_insured")

    start = medical_benefit_start(policy, person, on)
    born_before = birth_year_owed(policy, person, on)
    # The government-paid groups: the department pays the individual part, late or not.
    government = sorted(person.categories & med.government_categories)
    if government:
        rule = f"medical.government:{government[0]}"
        return MedicalQuote(True, 0, med.premium_fen, 0, late, rule, start, born_before)

    newborn = newborn_rule(policy, person, on)
    terms_late = late and newborn is None  # a newborn is never on the late terms
    if terms_late and not med.late_keeps_subsidies:
        return MedicalQuote(True, med.late_premium_fen, 0, 0, True, "medical.late", start)

    # Most favourable subsidy wins; ties go to the first key in sorted order (deterministic).
    premium = med.late_premium_fen if terms_late else med.premium_fen
    best_rule = newborn or ("medical.late" if terms_late else "medical.standard")
    best_subsidy = 0
    for key, amount in med.category_subsidy_fen:
        if key in person.categories and amount > best_subsidy:
            best_rule, best_subsidy = f"medical.subsidy:{key}", amount
    age = age_on(person.birth_date, policy.age_reference_date)
    for band in med.age_subsidies:
        if band.covers(age) and band.subsidy_fen > best_subsidy:
            best_rule, best_subsidy = f"medical.age_subsidy:{band.label}", band.subsidy_fen
    subsidy = min(best_subsidy, premium)
    return MedicalQuote(True, premium - subsidy, 0, subsidy, late, best_rule, start, born_before)


def _pension_ineligible_rule(policy: Policy, person: PersonFacts, on: date) -> str | None:
    if _dead(person, on):
        return "pension.deceased"
    if person.employee_pension:
        return "pension.employee_insured"
    age = age_on(person.birth_date, policy.age_reference_date)
    if person.birth_date > policy.age_reference_date or age < policy.pension.min_age:
        return "pension.too_young"
    if age >= policy.pension.max_age_exclusive:
        return "pension.too_old"
    if person.student:
        return "pension.student"
    return None


def allowed_tiers(policy: Policy, categories: frozenset[str]) -> tuple[int, ...]:
    """The tiers a person with `categories` may choose (100 only for the hardship groups)."""
    if categories & policy.pension.tier100_categories:
        if policy.pension.tier100_may_choose_higher:
            return policy.pension.tiers
        return (100,)
    return tuple(t for t in policy.pension.tiers if t != 100)


def check_tier(policy: Policy, person: PersonFacts, tier: int, on: date | None = None) -> None:
    """Raise unless `person` may choose `tier` (on `on`, default the reference date)."""
    _refuse_unknown_categories(policy, person.categories)
    if tier not in policy.pension.tiers:
        raise UnknownTier(field="pension_tier")
    if _pension_ineligible_rule(policy, person, on or policy.age_reference_date) is not None:
        raise NotEligible(field="pension_tier")
    if tier not in allowed_tiers(policy, person.categories):
        raise TierNotAllowed(field="pension_tier")


def quote_pension(policy: Policy, person: PersonFacts, on: date) -> PensionQuote:
    """The pension contribution of one person (DOMAIN.md "Pension tiers and subsidy").

    Eligibility uses the age on the policy's `age_reference_date`, not on `on`, so a person's
    eligibility does not change during the window; only death is judged on `on`. The tier-100
    groups default to the 100 tier paid by district finance (owed 0); a higher tier costs them
    the difference above 100. The subsidy is credited to the personal account and is reported
    beside, never subtracted from, what is owed. 2020 has no pension late rule (`late_rule`).
    Raises `TierNotAllowed` / `UnknownTier` for a chosen tier the person may not take.
    """
    pen = policy.pension
    refused = _pension_ineligible_rule(policy, person, on)
    if refused is not None:
        return PensionQuote(False, None, 0, 0, 0, refused)
    hardship = bool(person.categories & pen.tier100_categories)
    tier = person.pension_tier
    if tier is None and hardship:
        tier = 100
    if tier is None:
        return PensionQuote(True, None, 0, 0, 0, "pension.tier_not_chosen")
    check_tier(policy, person, tier, on)
    subsidy = pen.subsidy_fen(tier)
    if hardship:
        government = pen.tier100_government_pays_fen
        rule = "pension.tier100_government" if tier == 100 else "pension.tier100_higher"
        return PensionQuote(True, tier, tier * 100 - government, government, subsidy, rule)
    return PensionQuote(True, tier, tier * 100, 0, subsidy, "pension.tier")


def quote_member(policy: Policy, person: PersonFacts, on: date) -> MemberQuote:
    _refuse_unknown_categories(policy, person.categories)
    return MemberQuote(
        age=age_on(person.birth_date, policy.age_reference_date),
        medical=quote_medical(policy, person, on),
        pension=quote_pension(policy, person, on),
    )


def totals_of(members: Sequence[MemberQuote]) -> Totals:
    medical = sum(m.medical.owed_fen for m in members)
    pension = sum(m.pension.owed_fen for m in members)
    return Totals(
        owed_fen=medical + pension,
        medical_owed_fen=medical,
        pension_owed_fen=pension,
        government_pays_fen=sum(
            m.medical.government_pays_fen + m.pension.government_pays_fen for m in members
        ),
        subsidy_fen=sum(m.medical.subsidy_fen + m.pension.subsidy_fen for m in members),
    )


def quote_household(policy: Policy, persons: Sequence[PersonFacts], on: date) -> HouseholdQuote:
    members = tuple(quote_member(policy, p, on) for p in persons)
    return HouseholdQuote(members=members, totals=totals_of(members))
