"""Newborns 新生儿 (DOMAIN.md "Newborns") at the edges of the window and of the 90 days."""

from __future__ import annotations

from datetime import date

import pytest

from api.policy import load_policy, load_policy_file
from api.policy.errors import PolicyError
from api.policy.rules import (
    RULE_LABELS,
    PersonFacts,
    medical_benefit_start,
    quote_member,
    rule_label,
)
from tests.policy.conftest import PolicyText

POLICY = load_policy(2020)


def medical(born: date, paid_on: date, **kw: object) -> tuple[int, str, date | None, int | None]:
    q = quote_member(POLICY, PersonFacts(birth_date=born, **kw), paid_on).medical  # type: ignore[arg-type]
    assert q.due and q.government_pays_fen == 0
    return q.owed_fen, q.rule, q.benefit_start, q.birth_year


@pytest.mark.parametrize(
    ("born", "paid_on", "owed", "rule", "cover", "birth_year"),
    [
        # Born in the window, paid in it: the standard, cover with the year; the 90 days
        # (to 2020-01-13) cross into 2020, so 2019's premium is owed too.
        (date(2019, 10, 15), date(2019, 11, 1), 26000, "medical.newborn", date(2020, 1, 1), 2019),
        # ... paid late but on the 90th day: still 260, never the late 810.
        (date(2019, 10, 15), date(2020, 1, 13), 26000, "medical.newborn", date(2020, 1, 1), 2019),
        # Born after the window, paid within 90 days (the case): cover from birth.
        (date(2020, 2, 1), date(2020, 3, 15), 26000, "medical.newborn", date(2020, 2, 1), None),
        # Paid on the 90th day after birth (2020-02-01 + 90 days = 2020-05-01): still within.
        (date(2020, 2, 1), date(2020, 5, 1), 26000, "medical.newborn", date(2020, 2, 1), None),
        # The 91st day: after the 90 days, cover from the month after payment.
        (
            date(2020, 2, 1),
            date(2020, 5, 2),
            26000,
            "medical.newborn_after_90_days",
            date(2020, 6, 1),
            None,
        ),
        (
            date(2020, 2, 1),
            date(2020, 8, 31),
            26000,
            "medical.newborn_after_90_days",
            date(2020, 9, 1),
            None,
        ),
        # Born before the year, the 90 days crossing into it: cover from the year's start
        # (never before it) and the birth year's premium owed as well.
        (date(2019, 12, 25), date(2020, 1, 20), 26000, "medical.newborn", date(2020, 1, 1), 2019),
        # ... the same child after its 90 days (2019-12-25 + 90 = 2020-03-24).
        (
            date(2019, 12, 25),
            date(2020, 3, 25),
            26000,
            "medical.newborn_after_90_days",
            date(2020, 4, 1),
            None,
        ),
        # Born in the window, 90 days ending before the year (2019-10-01 + 90 = 2019-12-30):
        # the birth year is the counter's business within 2019, nothing owed across.
        (date(2019, 10, 1), date(2019, 10, 30), 26000, "medical.newborn", date(2020, 1, 1), None),
        # Paid in December after the 90 days: cover from January of the next year.
        (
            date(2020, 3, 1),
            date(2020, 12, 10),
            26000,
            "medical.newborn_after_90_days",
            date(2021, 1, 1),
            None,
        ),
    ],
)
def test_newborn_amount_rule_cover_and_birth_year(
    born: date, paid_on: date, owed: int, rule: str, cover: date, birth_year: int | None
) -> None:
    assert medical(born, paid_on) == (owed, rule, cover, birth_year)


def test_a_child_born_before_the_window_opened_is_a_late_payer() -> None:
    # Born 2019-09-30: could have paid in the window; paying in 2020 is late (逾期).
    assert medical(date(2019, 9, 30), date(2020, 1, 10)) == (
        81000,
        "medical.late",
        date(2020, 2, 9),
        None,
    )


def test_adults_paying_late_keep_the_late_terms() -> None:
    assert medical(date(1980, 1, 1), date(2020, 3, 15))[:3] == (
        81000,
        "medical.late",
        date(2020, 4, 14),
    )


def test_a_government_paid_newborn_owes_nothing_and_is_covered_from_birth() -> None:
    q = quote_member(
        POLICY,
        PersonFacts(birth_date=date(2020, 2, 1), categories=frozenset({"dibao"})),
        date(2020, 3, 1),
    ).medical
    assert (q.owed_fen, q.government_pays_fen, q.benefit_start) == (0, 26000, date(2020, 2, 1))


def test_cover_start_is_the_rules_not_the_late_delay() -> None:
    baby = PersonFacts(birth_date=date(2020, 2, 1))
    assert medical_benefit_start(POLICY, baby, date(2020, 3, 15)) == date(2020, 2, 1)


def test_the_newborn_rules_have_labels() -> None:
    for key in ("medical.newborn", "medical.newborn_after_90_days"):
        assert key in RULE_LABELS and "新生儿" in rule_label(key)


def test_the_policy_file_holds_the_newborn_terms() -> None:
    newborn = POLICY.medical.newborn
    assert (newborn.born_on_or_after, newborn.enrol_within_days) == (date(2019, 10, 1), 90)
    assert (newborn.cover_within, newborn.cover_after) == (
        "date_of_birth",
        "first_day_of_next_month",
    )


def test_the_enrolment_days_are_policy_data(policy_file: PolicyText) -> None:
    policy = load_policy_file(policy_file(("enrol_within_days = 90", "enrol_within_days = 30")))
    q = quote_member(policy, PersonFacts(birth_date=date(2020, 2, 1)), date(2020, 3, 15)).medical
    assert (q.owed_fen, q.rule, q.benefit_start) == (
        26000,
        "medical.newborn_after_90_days",
        date(2020, 4, 1),
    )


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (('cover_within = "date_of_birth"', 'cover_within = "birthday"'), "cover_within"),
        (("enrol_within_days = 90", "enrol_within_days = -1"), "enrol_within_days"),
        (("born_on_or_after = 2019-10-01", "born_on_or_after = 2021-01-01"), "born_on_or_after"),
        (('cover_after = "first_day_of_next_month"', 'cover_afte = "x"'), "cover_after"),
    ],
)
def test_bad_newborn_terms_are_refused_at_load(
    policy_file: PolicyText, edit: tuple[str, str], key: str
) -> None:
    with pytest.raises(PolicyError, match=key):
        load_policy_file(policy_file(edit))
