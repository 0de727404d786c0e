"""The policy file: loaded, validated, and refused when broken."""

from __future__ import annotations

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
