"""The targets (附件2) as policy data: the file's totals, and a row copied wrong stops the load."""

from __future__ import annotations

import tomllib

import pytest

from api.households.district import TOWNS
from api.policy.errors import PolicyError
from api.policy.model import POLICY_DIR
from api.policy.targets import load_targets, parse_targets


def test_totals_are_the_tables() -> None:
    t = load_targets(2020)
    assert len(t.towns) == 10
    assert sum(x.target.pension_persons for x in t.towns) == 128_450
    assert sum(x.target.medical_persons for x in t.towns) == 437_854
    assert sum(x.target.medical_amount_fen for x in t.towns) == 113_842_040 * 100
    assert sum(x.target.pension_new_persons for x in t.towns) == 4_325
    assert all(x.target.medical_amount_fen == x.target.medical_persons * 26_000 for x in t.towns)


def test_same_towns_as_the_district() -> None:
    t = load_targets(2020)
    assert [(x.code, x.name, x.target.medical_persons) for x in t.towns] == [
        (s.code, s.name, s.target_medical_persons) for s in TOWNS
    ]


def _data() -> dict:
    with open(POLICY_DIR / "targets_2020.toml", "rb") as fh:
        return tomllib.load(fh)


def test_wrong_row_is_refused() -> None:
    data = _data()
    data["towns"][3]["medical_persons"] += 1
    with pytest.raises(PolicyError, match=r"totals\.medical_persons"):
        parse_targets(data)


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda d: d["towns"][0].update(medical_amount_fen=1.5), "towns\\[0\\].medical_amount_fen"),
        (lambda d: d["towns"][0].update(extra=1), "towns\\[0\\].extra"),
        (lambda d: d["towns"].append(dict(d["towns"][0])), "duplicate town"),
        (lambda d: d["totals"].update(pension_persons=-1), r"totals\.pension_persons"),
    ],
)
def test_bad_values_name_the_key(change: object, key: str) -> None:
    data = _data()
    change(data)  # type: ignore[operator]
    with pytest.raises(PolicyError, match=key):
        parse_targets(data)
