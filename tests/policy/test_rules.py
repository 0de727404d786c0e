"""The premium rules of DOMAIN.md, row by row."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.policy import load_policy
from api.policy.errors import NotEligible, TierNotAllowed, UnknownCategory, UnknownTier
from api.policy.rules import (
    RULE_LABELS,
    PersonFacts,
    Totals,
    allowed_tiers,
    benefit_start,
    check_tier,
    collection_open,
    is_late,
    phase_on,
    quote_household,
    quote_member,
    rule_label,
)

POLICY = load_policy(2020)
IN_WINDOW = date(2019, 11, 5)
ADULT = date(1970, 6, 1)


def person(*, birth_date: date = ADULT, categories: Iterable[str] = (), **kw: Any) -> PersonFacts:
    return PersonFacts(birth_date=birth_date, categories=frozenset(categories), **kw)


# (category, medical owed, medical government pays, medical rule, tier-100 allowed)
CATEGORY_TABLE = [
    ("disabled_severe", 0, 26000, "medical.government:disabled_severe", True),
    ("poverty_registered", 0, 26000, "medical.government:poverty_registered", True),
    ("poverty_lifted", 0, 26000, "medical.government:poverty_lifted", False),
    ("dibao", 0, 26000, "medical.government:dibao", True),
    ("tekun", 0, 26000, "medical.government:tekun", True),
    ("hardship_approved", 0, 26000, "medical.government:hardship_approved", False),
    ("youfu", 26000, 0, "medical.standard", False),  # subsidy 0 until the district sets it
    ("orphan", 26000, 0, "medical.standard", False),
]


@pytest.mark.parametrize(("category", "owed", "gov", "rule", "tier100"), CATEGORY_TABLE)
def test_category_table(category: str, owed: int, gov: int, rule: str, tier100: bool) -> None:
    quote = quote_member(POLICY, person(categories=[category]), IN_WINDOW)
    assert quote.medical.due
    assert (quote.medical.owed_fen, quote.medical.government_pays_fen) == (owed, gov)
    assert quote.medical.rule == rule
    assert (100 in allowed_tiers(POLICY, frozenset({category}))) is tier100
    if tier100:
        # No tier chosen: the district pays the 100-yuan minimum, the person pays nothing.
        assert quote.pension.tier == 100
        assert quote.pension.owed_fen == 0
        assert quote.pension.government_pays_fen == 10000
        assert quote.pension.rule == "pension.tier100_government"
    else:
        assert quote.pension.tier is None
        assert quote.pension.rule == "pension.tier_not_chosen"


def test_plain_person_pays_the_standard_medical_premium() -> None:
    quote = quote_member(POLICY, person(), IN_WINDOW)
    assert (quote.medical.owed_fen, quote.medical.rule) == (26000, "medical.standard")


@pytest.mark.parametrize(
    ("tier", "subsidy"),
    [(100, 3000), (300, 3000)]
    + [(t, 6000) for t in (500, 600, 800, 1000, 1500, 2000, 2500, 3000, 4000, 5000)],
)
def test_every_tier_and_its_subsidy(tier: int, subsidy: int) -> None:
    categories = ["dibao"] if tier == 100 else []
    quote = quote_member(POLICY, person(pension_tier=tier, categories=categories), IN_WINDOW)
    assert quote.pension.tier == tier
    assert quote.pension.subsidy_fen == subsidy
    if tier == 100:
        assert quote.pension.owed_fen == 0
    else:
        # The subsidy is credited to the account: it never reduces the payment.
        assert quote.pension.owed_fen == tier * 100


def test_tier_100_is_refused_outside_the_hardship_groups() -> None:
    for categories in ([], ["poverty_lifted"], ["hardship_approved"], ["youfu"]):
        with pytest.raises(TierNotAllowed):
            check_tier(POLICY, person(categories=categories), 100)
        with pytest.raises(TierNotAllowed):
            quote_member(POLICY, person(categories=categories, pension_tier=100), IN_WINDOW)


def test_hardship_person_choosing_a_higher_tier_pays_the_difference() -> None:
    quote = quote_member(POLICY, person(categories=["tekun"], pension_tier=500), IN_WINDOW)
    assert quote.pension.owed_fen == 40000
    assert quote.pension.government_pays_fen == 10000
    assert quote.pension.subsidy_fen == 6000
    assert quote.pension.rule == "pension.tier100_higher"


def test_unknown_tier_and_category() -> None:
    with pytest.raises(UnknownTier):
        check_tier(POLICY, person(), 700)
    with pytest.raises(UnknownCategory):
        quote_member(POLICY, person(categories=["martian"]), IN_WINDOW)


@pytest.mark.parametrize(
    ("birth", "eligible", "rule"),
    [
        (date(2004, 1, 2), False, "pension.too_young"),  # 15 on 2020-01-01 (16 the next day)
        (date(2004, 1, 1), True, "pension.tier"),  # exactly 16 on the reference date
        (date(1960, 1, 2), True, "pension.tier"),  # 59 on the reference date
        (date(1960, 1, 1), False, "pension.too_old"),  # exactly 60: draws, does not pay
    ],
)
def test_pension_age_limits_on_both_sides_of_the_reference_date(
    birth: date, eligible: bool, rule: str
) -> None:
    quote = quote_member(POLICY, person(birth_date=birth, pension_tier=300), IN_WINDOW)
    assert quote.pension.eligible is eligible
    assert quote.pension.rule == rule
    assert quote.pension.owed_fen == (30000 if eligible else 0)


def test_students_and_employee_insured() -> None:
    student = quote_member(POLICY, person(birth_date=date(2001, 3, 1), student=True), IN_WINDOW)
    assert not student.pension.eligible and student.pension.rule == "pension.student"
    assert student.medical.owed_fen == 26000  # students still owe medical
    with pytest.raises(NotEligible):
        check_tier(POLICY, person(birth_date=date(2001, 3, 1), student=True), 300)
    employee = quote_member(POLICY, person(employee_pension=True, employee_medical=True), IN_WINDOW)
    assert not employee.medical.due and employee.medical.rule == "medical.employee_insured"
    assert not employee.pension.eligible and employee.pension.rule == "pension.employee_insured"


def test_newborns() -> None:
    born_2019 = quote_member(POLICY, person(birth_date=date(2019, 9, 1)), IN_WINDOW)
    assert born_2019.medical.due and born_2019.medical.owed_fen == 26000
    assert born_2019.age == 0 and not born_2019.pension.eligible
    unborn = quote_member(POLICY, person(birth_date=date(2020, 3, 1)), IN_WINDOW)
    assert not unborn.medical.due and unborn.medical.rule == "medical.not_born"
    born_2020 = quote_member(POLICY, person(birth_date=date(2020, 3, 1)), date(2020, 4, 1))
    assert born_2020.medical.due and born_2020.medical.late


def test_deceased_owe_nothing_from_the_date_of_death() -> None:
    dead = quote_member(POLICY, person(deceased_on=date(2019, 10, 30), pension_tier=300), IN_WINDOW)
    assert (dead.medical.due, dead.medical.rule) == (False, "medical.deceased")
    assert (dead.pension.eligible, dead.pension.owed_fen) == (False, 0)
    alive_then = quote_member(POLICY, person(deceased_on=date(2019, 12, 1)), IN_WINDOW)
    assert alive_then.medical.owed_fen == 26000


def test_last_day_of_the_window_and_the_first_late_day() -> None:
    last = quote_member(POLICY, person(pension_tier=500), date(2019, 12, 20))
    assert not last.medical.late and last.medical.owed_fen == 26000
    assert benefit_start(POLICY, date(2019, 12, 20)) == date(2020, 1, 1)
    first_late = quote_member(POLICY, person(pension_tier=500), date(2019, 12, 21))
    assert first_late.medical.late and first_late.medical.rule == "medical.late"
    assert first_late.medical.owed_fen == 26000 + 55000
    assert first_late.pension.owed_fen == 50000  # no late rule for pension
    assert benefit_start(POLICY, date(2019, 12, 21)) == date(2020, 1, 20)
    assert benefit_start(POLICY, date(2020, 3, 10)) == date(2020, 4, 9)
    gov_late = quote_member(POLICY, person(categories=["dibao"]), date(2020, 2, 1))
    assert gov_late.medical.owed_fen == 0  # the department still pays


def test_multi_category_person_gets_the_most_favourable_rule() -> None:
    quote = quote_member(
        POLICY, person(categories=["youfu", "poverty_lifted"], pension_tier=300), IN_WINDOW
    )
    assert quote.medical.owed_fen == 0
    assert quote.medical.rule == "medical.government:poverty_lifted"
    # poverty_lifted gives no tier-100 right, youfu neither.
    assert 100 not in allowed_tiers(POLICY, frozenset({"youfu", "poverty_lifted"}))
    both = quote_member(POLICY, person(categories=["poverty_lifted", "dibao"]), IN_WINDOW)
    assert both.pension.tier == 100  # dibao grants the 100 tier


def test_phases_and_collection() -> None:
    assert phase_on(POLICY, date(2019, 10, 10)).key == "preparation"  # type: ignore[union-attr]
    assert not collection_open(POLICY, date(2019, 10, 25))
    assert collection_open(POLICY, date(2019, 10, 26))
    assert collection_open(POLICY, date(2019, 11, 23))
    assert collection_open(POLICY, date(2019, 12, 21))
    assert not collection_open(POLICY, date(2019, 9, 30))
    assert not collection_open(POLICY, date(2021, 1, 1))
    assert not is_late(POLICY, date(2019, 12, 20)) and is_late(POLICY, date(2019, 12, 21))


categories = st.frozensets(st.sampled_from(sorted(POLICY.category_keys)), max_size=3)
persons = st.builds(
    PersonFacts,
    birth_date=st.dates(min_value=date(1920, 1, 1), max_value=date(2020, 12, 31)),
    categories=categories,
    student=st.booleans(),
    employee_pension=st.booleans(),
    employee_medical=st.booleans(),
    deceased_on=st.none() | st.dates(min_value=date(2019, 1, 1), max_value=date(2020, 12, 31)),
)
days = st.dates(min_value=date(2019, 10, 1), max_value=date(2020, 12, 31))


@given(p=persons, on=days)
def test_medical_shares_add_up_to_the_policy_amount(p: PersonFacts, on: date) -> None:
    q = quote_member(POLICY, p, on).medical
    assert min(q.owed_fen, q.government_pays_fen, q.subsidy_fen) >= 0
    if q.due:
        # A newborn is never on the late terms (DOMAIN.md "Newborns"), late or not.
        late_terms = (
            q.late and q.government_pays_fen == 0 and not q.rule.startswith("medical.newborn")
        )
        full = POLICY.medical.late_premium_fen if late_terms else 26000
        assert q.owed_fen + q.government_pays_fen + q.subsidy_fen == full
    else:
        assert q.owed_fen == q.government_pays_fen == 0


@given(p=persons, on=days, tier=st.sampled_from(POLICY.pension.tiers))
def test_pension_shares_add_up_to_the_tier(p: PersonFacts, on: date, tier: int) -> None:
    if tier not in allowed_tiers(POLICY, p.categories):
        return
    chosen = PersonFacts(**{**p.__dict__, "pension_tier": tier})
    q = quote_member(POLICY, chosen, on).pension
    assert min(q.owed_fen, q.government_pays_fen) >= 0
    if q.eligible:
        assert q.owed_fen + q.government_pays_fen == tier * 100
    else:
        assert q.owed_fen == q.government_pays_fen == 0


@given(members=st.lists(persons, min_size=1, max_size=6), on=days)
def test_household_totals_are_the_sum_of_members(members: list[PersonFacts], on: date) -> None:
    quote = quote_household(POLICY, members, on)
    assert quote.totals.medical_owed_fen == sum(m.medical.owed_fen for m in quote.members)
    assert quote.totals.pension_owed_fen == sum(m.pension.owed_fen for m in quote.members)
    assert quote.totals.owed_fen == quote.totals.medical_owed_fen + quote.totals.pension_owed_fen
    assert len(quote.members) == len(members)


def test_pension_age_is_judged_on_the_reference_date_not_the_payment_date() -> None:
    # Turns 16 on 2020-06-01: on 2020-07-01 they are 16, but for 2020 they are too young.
    young = person(birth_date=date(2004, 6, 1), pension_tier=300)
    assert quote_member(POLICY, young, date(2020, 7, 1)).pension.rule == "pension.too_young"
    with pytest.raises(NotEligible):
        check_tier(POLICY, young, 300, date(2020, 7, 1))
    # 59 on 2020-01-01 and 60 by 2020-03-01: still pays for 2020.
    older = person(birth_date=date(1960, 1, 10), pension_tier=300)
    late = quote_member(POLICY, older, date(2020, 3, 1))
    assert late.pension.eligible and late.pension.owed_fen == 30000
    assert late.age == 59


def test_death_on_the_payment_date_already_counts() -> None:
    on = date(2019, 11, 5)
    dead = quote_member(POLICY, person(deceased_on=on, categories=["dibao"]), on)
    assert (dead.medical.due, dead.medical.government_pays_fen) == (False, 0)
    assert (dead.pension.rule, dead.pension.government_pays_fen) == ("pension.deceased", 0)
    day_after = quote_member(POLICY, person(deceased_on=date(2019, 11, 6)), on)
    assert day_after.medical.due


def test_a_2019_newborn_quoted_before_birth_is_not_due() -> None:
    q = quote_member(POLICY, person(birth_date=date(2019, 11, 10)), date(2019, 11, 9))
    assert (q.medical.due, q.medical.owed_fen, q.medical.rule) == (False, 0, "medical.not_born")
    born = quote_member(POLICY, person(birth_date=date(2019, 11, 10)), date(2019, 11, 10))
    assert born.medical.due and not born.medical.late and born.medical.owed_fen == 26000


@pytest.mark.parametrize("category", ["disabled_severe", "poverty_registered", "dibao", "tekun"])
@pytest.mark.parametrize("tier", [300, 5000])
def test_every_tier100_group_may_pay_the_difference_for_a_higher_tier(
    category: str, tier: int
) -> None:
    q = quote_member(POLICY, person(categories=[category], pension_tier=tier), IN_WINDOW).pension
    assert (q.tier, q.owed_fen, q.government_pays_fen) == (tier, tier * 100 - 10000, 10000)
    check_tier(POLICY, person(categories=[category]), 100)  # and may take 100 itself


def test_tier100_with_explicit_choice_of_100() -> None:
    q = quote_member(POLICY, person(categories=["dibao"], pension_tier=100), IN_WINDOW).pension
    assert (q.tier, q.owed_fen, q.government_pays_fen, q.subsidy_fen) == (100, 0, 10000, 3000)


def test_ineligible_person_gets_no_district_payment_even_in_a_tier100_group() -> None:
    # A 70-year-old on 低保 draws the pension: nobody pays a contribution for them.
    q = quote_member(POLICY, person(birth_date=date(1949, 5, 1), categories=["dibao"]), IN_WINDOW)
    assert (q.pension.eligible, q.pension.tier, q.pension.government_pays_fen) == (False, None, 0)
    assert q.pension.rule == "pension.too_old"
    assert q.medical.owed_fen == 0  # medical is still paid by the government


def test_no_tier_chosen_owes_nothing_yet() -> None:
    q = quote_member(POLICY, person(), IN_WINDOW).pension
    assert (q.eligible, q.tier, q.owed_fen, q.subsidy_fen) == (True, None, 0, 0)
    assert q.rule == "pension.tier_not_chosen"


def test_errors_carry_stable_codes_and_chinese_messages() -> None:
    with pytest.raises(UnknownCategory) as unknown:
        quote_member(POLICY, person(categories=["martian", "dibao"]), IN_WINDOW)
    assert unknown.value.code == "unknown_category"
    assert "martian" in unknown.value.message and unknown.value.field == "categories"
    with pytest.raises(UnknownCategory) as in_check:
        check_tier(POLICY, person(categories=["martian"]), 300)
    assert "martian" in in_check.value.message
    with pytest.raises(TierNotAllowed) as refused:
        check_tier(POLICY, person(categories=["poverty_lifted"]), 100)
    assert refused.value.code == "tier_not_allowed" and "100元" in refused.value.message
    with pytest.raises(UnknownTier) as tier:
        check_tier(POLICY, person(), 200)
    assert (tier.value.code, tier.value.field) == ("unknown_tier", "pension_tier")
    with pytest.raises(NotEligible) as old:
        check_tier(POLICY, person(birth_date=date(1950, 1, 1)), 300)
    assert old.value.code == "not_eligible"


@pytest.mark.parametrize(
    ("day", "key", "open_"),
    [
        (date(2019, 9, 30), None, False),
        (date(2019, 10, 1), "preparation", False),
        (date(2019, 10, 25), "preparation", False),
        (date(2019, 10, 26), "concentrated_payment", True),
        (date(2019, 11, 20), "concentrated_payment", True),
        (date(2019, 11, 21), "between_phases", True),
        (date(2019, 11, 25), "between_phases", True),
        (date(2019, 11, 26), "treasury", True),
        (date(2019, 12, 20), "treasury", True),
        (date(2019, 12, 21), "late", True),
        (date(2020, 12, 31), "late", True),
        (date(2021, 1, 1), None, False),
    ],
)
def test_phase_boundaries(day: date, key: str | None, open_: bool) -> None:
    phase = phase_on(POLICY, day)
    assert (phase.key if phase else None) == key
    assert collection_open(POLICY, day) is open_


def test_benefit_start_for_on_time_payments_is_the_start_of_the_year() -> None:
    for paid in (date(2019, 10, 26), date(2019, 12, 20)):
        assert benefit_start(POLICY, paid) == date(2020, 1, 1)


def test_household_keeps_member_order_and_sums_every_share() -> None:
    members = [
        person(categories=["dibao"]),  # medical 0 (gov 26000), pension 100 tier (gov 10000)
        person(pension_tier=1000),  # medical 26000, pension 100000 (subsidy 6000)
        person(birth_date=date(2015, 1, 1)),  # child: medical 26000 only
        person(employee_medical=True, employee_pension=True),  # nothing
    ]
    quote = quote_household(POLICY, members, IN_WINDOW)
    assert [m.age for m in quote.members] == [49, 49, 5, 49]
    assert quote.totals == Totals(
        owed_fen=26000 + 100000 + 26000,
        medical_owed_fen=52000,
        pension_owed_fen=100000,
        government_pays_fen=26000 + 10000,
        subsidy_fen=3000 + 6000,
    )
    assert quote_household(POLICY, [], IN_WINDOW).totals == Totals(0, 0, 0, 0, 0)


tiers = st.none() | st.sampled_from(POLICY.pension.tiers)
persons_with_tier = st.builds(
    PersonFacts,
    birth_date=st.dates(min_value=date(1920, 1, 1), max_value=date(2020, 12, 31)),
    categories=categories,
    student=st.booleans(),
    employee_pension=st.booleans(),
    employee_medical=st.booleans(),
    deceased_on=st.none() | st.dates(min_value=date(2019, 1, 1), max_value=date(2020, 12, 31)),
    pension_tier=tiers,
)


@given(p=persons_with_tier, on=days)
def test_every_quoted_rule_has_a_label_and_amounts_are_never_negative(
    p: PersonFacts, on: date
) -> None:
    try:
        q = quote_member(POLICY, p, on)
    except (TierNotAllowed, NotEligible):
        assert p.pension_tier is not None
        return
    for part in (q.medical, q.pension):
        assert rule_label(part.rule) in RULE_LABELS.values(), part.rule
        assert min(part.owed_fen, part.government_pays_fen, part.subsidy_fen) >= 0
    # Pension: owed + the district's share is exactly the tier, whatever the categories.
    if q.pension.tier is not None:
        assert q.pension.owed_fen + q.pension.government_pays_fen == q.pension.tier * 100
        assert q.pension.subsidy_fen == POLICY.pension.subsidy_fen(q.pension.tier)
    else:
        assert q.pension.owed_fen == q.pension.government_pays_fen == 0
    assert q.medical.late is is_late(POLICY, on)
