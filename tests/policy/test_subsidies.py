"""Medical subsidies (优抚, 孤儿, 60–69, 70+): the amounts the plan leaves blank, once set.

The 2020 file carries 0 for all of them, so these tests load a variant with amounts set
(conftest `subsidised_policy`) — the rules must work the day the district fills them in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from api.policy.errors import PolicyError
from api.policy.model import Policy, load_policy_file
from api.policy.rules import PersonFacts, quote_member, rule_label

PolicyText = Callable[..., Path]  # the conftest `policy_file` fixture

IN_WINDOW = date(2019, 11, 5)
LATE = date(2020, 1, 15)
ADULT = date(1970, 6, 1)


def facts(birth: date = ADULT, *categories: str) -> PersonFacts:
    return PersonFacts(birth_date=birth, categories=frozenset(categories))


@pytest.mark.parametrize(
    ("categories", "owed", "subsidy", "rule"),
    [
        (("youfu",), 21000, 5000, "medical.subsidy:youfu"),
        (("orphan",), 18000, 8000, "medical.subsidy:orphan"),
        # Several subsidy categories: the largest wins, they never add up.
        (("youfu", "orphan"), 18000, 8000, "medical.subsidy:orphan"),
        # A government-paid category beats any subsidy.
        (("youfu", "hardship_approved"), 0, 0, "medical.government:hardship_approved"),
    ],
)
def test_category_subsidies_reduce_what_is_owed(
    subsidised_policy: Policy, categories: tuple[str, ...], owed: int, subsidy: int, rule: str
) -> None:
    q = quote_member(subsidised_policy, facts(ADULT, *categories), IN_WINDOW).medical
    assert (q.owed_fen, q.subsidy_fen, q.rule) == (owed, subsidy, rule)
    assert q.owed_fen + q.subsidy_fen + q.government_pays_fen == 26000


@pytest.mark.parametrize(
    ("birth", "owed", "rule"),
    [
        (date(1960, 1, 2), 26000, "medical.standard"),  # 59 on 2020-01-01
        (date(1960, 1, 1), 20000, "medical.age_subsidy:60-69"),  # exactly 60
        (date(1950, 1, 2), 20000, "medical.age_subsidy:60-69"),  # 69
        (date(1950, 1, 1), 18000, "medical.age_subsidy:70+"),  # exactly 70
        (date(1921, 5, 5), 18000, "medical.age_subsidy:70+"),  # open-ended band
    ],
)
def test_age_bands_on_the_reference_date(
    subsidised_policy: Policy, birth: date, owed: int, rule: str
) -> None:
    q = quote_member(subsidised_policy, facts(birth), IN_WINDOW).medical
    assert (q.owed_fen, q.rule) == (owed, rule)


def test_age_band_uses_the_reference_date_not_the_payment_date(
    subsidised_policy: Policy,
) -> None:
    # 59 on 2020-01-01, 60 by the time this late payment is made: still no 60–69 subsidy.
    q = quote_member(subsidised_policy, facts(date(1960, 1, 10)), date(2020, 3, 1)).medical
    assert q.rule == "medical.late" and q.subsidy_fen == 0


def test_a_tie_goes_to_the_category_subsidy_deterministically(subsidised_policy: Policy) -> None:
    # An orphan aged 70+ (odd, but the data may say so): both give 8000; the category wins.
    q = quote_member(subsidised_policy, facts(date(1940, 1, 1), "orphan"), IN_WINDOW).medical
    assert (q.subsidy_fen, q.rule) == (8000, "medical.subsidy:orphan")


def test_age_band_beats_a_smaller_category_subsidy(subsidised_policy: Policy) -> None:
    q = quote_member(subsidised_policy, facts(date(1955, 1, 1), "youfu"), IN_WINDOW).medical
    assert (q.owed_fen, q.rule) == (20000, "medical.age_subsidy:60-69")


def test_late_payment_loses_the_subsidies(subsidised_policy: Policy) -> None:
    q = quote_member(subsidised_policy, facts(date(1940, 1, 1), "orphan"), LATE).medical
    assert (q.owed_fen, q.subsidy_fen, q.rule, q.late) == (81000, 0, "medical.late", True)


def test_late_keeps_subsidies_when_the_file_says_so(policy_file: PolicyText) -> None:
    policy = load_policy_file(
        policy_file(
            ("orphan = 0", "orphan = 8000"),
            ("late_keeps_subsidies = false", "late_keeps_subsidies = true"),
        )
    )
    q = quote_member(policy, facts(ADULT, "orphan"), LATE).medical
    assert (q.owed_fen, q.subsidy_fen, q.late) == (81000 - 8000, 8000, True)


def test_a_subsidy_equal_to_the_premium_owes_zero_not_less(policy_file: PolicyText) -> None:
    policy = load_policy_file(policy_file(("youfu = 0", "youfu = 26000")))
    q = quote_member(policy, facts(ADULT, "youfu"), IN_WINDOW).medical
    assert (q.owed_fen, q.subsidy_fen) == (0, 26000)


def test_a_subsidy_above_the_premium_is_refused_at_load(policy_file: PolicyText) -> None:
    with pytest.raises(PolicyError, match=r"medical\.category_subsidy_fen\.youfu"):
        load_policy_file(policy_file(("youfu = 0", "youfu = 26001")))


def test_rule_label_names_the_category(subsidised_policy: Policy) -> None:
    assert rule_label("medical.subsidy:orphan", subsidised_policy) == "享受医疗缴费补助（孤儿）"
    assert rule_label("medical.age_subsidy:70+", subsidised_policy).endswith("（70+）")
    assert rule_label("medical.subsidy:orphan") == "享受医疗缴费补助"
