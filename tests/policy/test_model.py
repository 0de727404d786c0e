"""The policy file: loaded, validated, and refused when broken."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import date
from pathlib import Path

import pytest

from api.policy.errors import PolicyError, UnknownYear
from api.policy.model import POLICY_DIR, available_years, load_policy, load_policy_file


def test_2020_policy_numbers() -> None:
    policy = load_policy(2020)
    assert policy.age_reference_date == date(2020, 1, 1)
    assert (policy.window_start, policy.window_end) == (date(2019, 10, 1), date(2019, 12, 20))
    tiers = (100, 300, 500, 600, 800, 1000, 1500, 2000, 2500, 3000, 4000, 5000)
    assert policy.pension.tiers == tiers
    assert policy.medical.premium_fen == 26000
    assert policy.medical.late_premium_fen == 26000 + 55000
    assert policy.pension.tier100_categories == {
        "disabled_severe",
        "poverty_registered",
        "dibao",
        "tekun",
    }
    assert "poverty_lifted" in policy.medical.government_categories
    assert 2020 in available_years()


def test_unknown_year() -> None:
    with pytest.raises(UnknownYear):
        load_policy(1999)


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = (POLICY_DIR / "policy_2020.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "policy_2020.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("premium_fen = 26000", "premium_fen = -1", "medical.premium_fen"),
        ("premium_fen = 26000", "premium_fen = 260.0", "medical.premium_fen"),
        ("tier = 300\n", "tier = 100\n", "pension.tiers[1]"),
        ('"dibao", "tekun"]', '"dibao", "tekun", "nobody"]', "tier100_categories"),
        ("end = 2019-12-20", "end = 2019-09-01", "window.end"),
        ('late_rule = "none"', 'late_rule = "double"', "pension.late_rule"),
        ("year = 2020", 'year = "2020"', "policy.year"),
    ],
)
def test_broken_files_are_refused_naming_the_key(
    tmp_path: Path, old: str, new: str, names: str
) -> None:
    with pytest.raises(PolicyError, match=names.replace("[", r"\[").replace("]", r"\]")):
        load_policy_file(_broken(tmp_path, old, new))


def test_unparseable_file(tmp_path: Path) -> None:
    path = tmp_path / "policy_2020.toml"
    path.write_text("year = = 2020", encoding="utf-8")
    with pytest.raises(PolicyError):
        load_policy_file(path)


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        # A TOML datetime is a `date` subclass: it must not pass for a date.
        (("coverage_start = 2020-01-01", "coverage_start = 2020-01-01T00:00:00"), "coverage_start"),
        # A misspelt optional key would silently make the 60-69 band open-ended.
        (("max_age_exclusive = 70", "max_age_exlusive = 70"), "max_age_exlusive: unknown key"),
        (("year = 2020", "year = 2020\nyaer = 2020"), "policy.yaer: unknown key"),
        (("late_benefit_delay_days = 30", "late_benefit_delay_days = -30"), "delay_days"),
        (("late_government_subsidy_fen = 55000", "late_government_subsidy_fen = true"), "late_"),
        (("tier = 100\n", "tier = 0\n"), r"pension.tiers\[0\].tier"),
        (("tier = 5000\n", "tier = 4000\n"), r"pension.tiers\[11\].tier"),
        (("subsidy_fen = 6000", "subsidy_fen = 60.0"), r"pension.tiers\[2\].subsidy_fen"),
        (
            ("tier100_government_pays_fen = 10000", "tier100_government_pays_fen = 10001"),
            "tier100_",
        ),
        (
            ("tier100_may_choose_higher = true", 'tier100_may_choose_higher = "yes"'),
            "choose_higher",
        ),
        (("max_age_exclusive = 60", "max_age_exclusive = 16"), "pension.max_age_exclusive"),
        (('"dibao", "tekun"]', '"dibao", "tekun", "dibao"]'), "listed twice"),
        (('"hardship_approved",\n]', '"hardship_approved", "nobody",\n]'), "government_categor"),
        (("youfu = 0\n", "youfu = 0\nnobody = 0\n"), "category_subsidy_fen.nobody"),
        (('orphan = "孤儿"', 'orphan = ""'), "categories.orphan"),
        (
            ("department_list_deadline = 2019-11-26", "department_list_deadline = 2020-01-05"),
            "department_list_deadline",
        ),
        # Phases out of order / overlapping / duplicated.
        (
            ("start = 2019-10-26\nend = 2019-11-20", "start = 2019-10-20\nend = 2019-11-20"),
            r"phases\[1\].start",
        ),
        (('key = "treasury"', 'key = "preparation"'), r"phases\[3\].key"),
        (("collection_open = false", "collection_open = 0"), r"phases\[0\].collection_open"),
        # Age bands that overlap would pay two subsidies for one age.
        (("min_age = 70", "min_age = 65"), "overlap"),
        (("[window]", "extra = 3\n[window]"), "policy.extra: unknown key"),
        (("end = 2019-12-20", "end = 2019-12-20\nstrat = 2019-10-01"), "window.strat: unknown"),
    ],
)
def test_more_broken_files_are_refused(tmp_path: Path, edit: tuple[str, str], names: str) -> None:
    with pytest.raises(PolicyError, match=names):
        load_policy_file(_broken(tmp_path, *edit))


def test_a_phase_that_is_not_a_table_is_a_policy_error(tmp_path: Path) -> None:
    text = (POLICY_DIR / "policy_2020.toml").read_text(encoding="utf-8")
    start = text.index("[[phases]]")
    end = text.index("[categories]")
    path = tmp_path / "policy_2020.toml"
    window = text.index("[window]")
    cut = text[:start] + text[end:]
    path.write_text(cut[:window] + "phases = [1, 2]\n" + cut[window:], encoding="utf-8")
    with pytest.raises(PolicyError, match=r"phases\[0\]: expected a table"):
        load_policy_file(path)


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError):
        load_policy_file(tmp_path / "nope.toml")


def test_the_file_must_declare_the_year_in_its_name(tmp_path: Path) -> None:
    path = _broken(tmp_path, "year = 2020", "year = 2021")
    assert load_policy_file(path).year == 2021  # the file itself is valid …
    # … but load_policy(2020) checks the declared year against the requested one.
    assert load_policy(2020).year == 2020


def test_policy_is_immutable_hashable_and_cached() -> None:
    policy = load_policy(2020)
    assert load_policy(2020) is policy
    assert hash(policy) == hash(load_policy_file(POLICY_DIR / "policy_2020.toml"))
    assert policy == load_policy_file(POLICY_DIR / "policy_2020.toml")
    with pytest.raises(FrozenInstanceError):
        policy.year = 2021  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        policy.medical.premium_fen = 1  # type: ignore[misc]


def test_every_domain_category_has_a_chinese_label() -> None:
    policy = load_policy(2020)
    domain_keys = {
        "disabled_severe",
        "poverty_registered",
        "poverty_lifted",
        "dibao",
        "tekun",
        "hardship_approved",
        "youfu",
        "orphan",
    }
    assert policy.category_keys == domain_keys
    for key, label in policy.categories:  # the roster import unpacks them like this
        assert label == policy.category_label(key)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in label)
    assert policy.category_label("dibao") == "城乡最低生活保障对象"
    with pytest.raises(KeyError):
        policy.category_label("nobody")


def test_tier_table_and_phases_of_2020() -> None:
    policy = load_policy(2020)
    subsidies = {row.tier: row.subsidy_fen for row in policy.pension.tier_table}
    assert subsidies == {100: 3000, 300: 3000} | {
        t: 6000 for t in (500, 600, 800, 1000, 1500, 2000, 2500, 3000, 4000, 5000)
    }
    assert policy.pension.tier100_government_pays_fen == 10000
    assert policy.pension.tier100_may_choose_higher is True
    assert policy.pension.late_rule == "none"
    assert (policy.pension.min_age, policy.pension.max_age_exclusive) == (16, 60)
    assert policy.department_list_deadline == date(2019, 11, 26)
    assert (policy.coverage_start, policy.coverage_end) == (date(2020, 1, 1), date(2020, 12, 31))
    assert policy.medical.late_benefit_delay_days == 30
    assert policy.medical.government_categories == {
        "disabled_severe",
        "poverty_registered",
        "poverty_lifted",
        "dibao",
        "tekun",
        "hardship_approved",
    }
    assert dict(policy.medical.category_subsidy_fen) == {"youfu": 0, "orphan": 0}
    assert [(b.label, b.subsidy_fen) for b in policy.medical.age_subsidies] == [
        ("60-69", 0),
        ("70+", 0),
    ]
    named = {p.key: (p.start, p.end, p.collection_open) for p in policy.phases}
    assert named["preparation"] == (date(2019, 10, 1), date(2019, 10, 25), False)
    assert named["concentrated_payment"] == (date(2019, 10, 26), date(2019, 11, 20), True)
    assert named["treasury"] == (date(2019, 11, 26), date(2019, 12, 20), True)
