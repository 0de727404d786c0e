"""`POST /api/v1/premiums/quote`: amounts, order, masking, 422 shapes (DESIGN.md contract)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask import Flask

from tests.households.household_factories import birth_for_age, id_number

QUOTE = "/api/v1/premiums/quote"


def _member(age: int, name: str = "张三", **kwargs: Any) -> dict[str, Any]:
    body = {
        "id_number": id_number(birth_for_age(age)),
        "name": name,
        "categories": [],
        "student": False,
        "employee_pension": False,
        "employee_medical": False,
        "pension_tier": None,
    }
    body.update(kwargs)
    return body


def _quote(app: Flask, body: Any, **kwargs: Any) -> Any:
    return app.test_client().post(QUOTE, json=body, **kwargs)


def test_mixed_household_amounts_and_order(app: Flask) -> None:
    members = [
        _member(40, "王小明", pension_tier=500),
        _member(65, "李秀英", categories=["dibao"]),
        _member(50, "赵大勇", categories=["disabled_severe"]),
        _member(10, "王明", student=True),
        _member(30, "孙二", employee_medical=True, pension_tier=300),
    ]
    response = _quote(app, {"year": 2020, "paid_on": "2019-11-05", "members": members})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["year"] == 2020 and body["paid_on"] == "2019-11-05"
    assert body["late"] is False and body["collection_open"] is True
    out = body["members"]
    assert [m["name"] for m in out] == ["王*明", "李*英", "赵*勇", "王*", "孙*"]
    assert [m["age"] for m in out] == [40, 65, 50, 10, 30]
    for sent, got in zip(members, out, strict=True):
        assert got["id_number"] == sent["id_number"][:6] + "*" * 8 + sent["id_number"][-4:]
    a, b, c, d, e = out
    assert a["medical"]["owed_fen"] == 26000 and a["medical"]["rule"] == "medical.standard"
    assert a["pension"] == {
        "eligible": True,
        "tier": 500,
        "owed_fen": 50000,
        "government_pays_fen": 0,
        "subsidy_fen": 6000,
        "rule": "pension.tier",
        "rule_label": "按所选档次缴费",
    }
    assert (b["medical"]["owed_fen"], b["medical"]["government_pays_fen"]) == (0, 26000)
    assert b["pension"]["eligible"] is False and b["pension"]["rule"] == "pension.too_old"
    assert c["pension"]["tier"] == 100 and c["pension"]["owed_fen"] == 0
    assert c["pension"]["government_pays_fen"] == 10000 and c["pension"]["subsidy_fen"] == 3000
    assert d["medical"]["owed_fen"] == 26000 and d["pension"]["rule"] == "pension.too_young"
    assert e["medical"]["due"] is False and e["medical"]["owed_fen"] == 0
    assert e["pension"]["owed_fen"] == 30000 and e["pension"]["subsidy_fen"] == 3000
    assert body["totals"] == {
        "owed_fen": 52000 + 80000,
        "medical_owed_fen": 52000,
        "pension_owed_fen": 80000,
        "government_pays_fen": 26000 + 26000 + 10000,
        "subsidy_fen": 6000 + 3000 + 3000,
    }


def test_late_payment_owes_full_cost(app: Flask) -> None:
    body = {"year": 2020, "paid_on": "2019-12-21", "members": [_member(40)]}
    out = _quote(app, body).get_json()
    assert out["late"] is True
    assert out["members"][0]["medical"]["owed_fen"] == 81000
    assert out["members"][0]["medical"]["late"] is True
    last_day = _quote(app, {**body, "paid_on": "2019-12-20"}).get_json()
    assert last_day["members"][0]["medical"]["owed_fen"] == 26000


def test_paid_on_defaults_to_today(app: Flask) -> None:
    from tests.auth.login_fakes import use_settings

    use_settings(app, APP_TODAY="2019-10-27")
    out = _quote(app, {"year": 2020, "members": [_member(40)]}).get_json()
    assert out["paid_on"] == "2019-10-27"


def test_no_login_and_no_database_needed(app: Flask) -> None:
    # The quote never touches the database: it works with no session at all.
    response = _quote(app, {"year": 2020, "paid_on": "2019-11-05", "members": [_member(20)]})
    assert response.status_code == 200


def _errors(response: Any) -> Any:
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["code"] == "validation_error" and body["status"] == 422
    return body["errors"]


def test_bad_id_number_names_member_and_field(app: Flask) -> None:
    good = _member(40)
    bad = dict(
        good, id_number=good["id_number"][:17] + ("1" if good["id_number"][17] != "1" else "2")
    )
    errors = _errors(_quote(app, {"year": 2020, "members": [_member(30), bad]}))
    assert errors == {"json": {"members": {"1": {"id_number": ["身份证号码校验位错误"]}}}}
    short = _errors(_quote(app, {"year": 2020, "members": [dict(good, id_number="12345")]}))
    assert list(short["json"]["members"]["0"]) == ["id_number"]
    bad_birth = "370406" + "19991332" + "123"
    from api.policy.idnumber import check_character

    impossible = bad_birth + check_character(bad_birth)
    birth = _errors(_quote(app, {"year": 2020, "members": [dict(good, id_number=impossible)]}))
    assert birth["json"]["members"]["0"]["id_number"] == ["身份证号码中的出生日期无效"]


def test_unknown_category_and_bad_tiers(app: Flask) -> None:
    members = [
        _member(40, categories=["vip"]),
        _member(40, pension_tier=100),  # tier 100 for a person outside the groups
        _member(40, pension_tier=700),  # no such tier
        _member(70, pension_tier=300),  # too old for any tier
        _member(40, categories=["dibao"], pension_tier=100),  # allowed
    ]
    errors = _errors(_quote(app, {"year": 2020, "paid_on": "2019-11-05", "members": members}))
    member_errors = errors["json"]["members"]
    assert set(member_errors) == {"0", "1", "2", "3"}
    assert (
        list(member_errors["0"]) == ["categories"] and "vip" in member_errors["0"]["categories"][0]
    )
    assert list(member_errors["1"]) == ["pension_tier"]
    assert "100元档次仅限" in member_errors["1"]["pension_tier"][0]
    assert list(member_errors["2"]) == ["pension_tier"]
    assert list(member_errors["3"]) == ["pension_tier"]


def test_tier_100_allowed_for_dibao(app: Flask) -> None:
    body = {
        "year": 2020,
        "members": [_member(40, categories=["dibao"], pension_tier=100)],
    }
    out = _quote(app, body).get_json()
    pension = out["members"][0]["pension"]
    assert (pension["tier"], pension["owed_fen"], pension["government_pays_fen"]) == (100, 0, 10000)


def test_unknown_year_is_422(app: Flask) -> None:
    errors = _errors(_quote(app, {"year": 2031, "members": [_member(40)]}))
    assert list(errors["json"]) == ["year"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"members": []}, "year"),
        ({"year": 2020, "members": []}, "members"),
        ({"year": "2020", "members": [{}]}, "year"),
        ({"year": 2020.5, "members": [{}]}, "year"),
        ({"year": True, "members": [{}]}, "year"),
        ({"year": 2020, "members": "x"}, "members"),
        ({"year": 2020, "members": [None]}, "members"),
        ({"year": 2020, "members": [{"id_number": 370406}]}, "members"),
        ({"year": 2020, "members": [{"id_number": None}]}, "members"),
        ({"year": 2020, "paid_on": "2019-13-01", "members": []}, "paid_on"),
        ({"year": 2020, "members": [], "extra": 1}, "extra"),
    ],
)
def test_wrong_types_are_422_naming_the_field(app: Flask, body: Any, where: str) -> None:
    errors = _errors(_quote(app, body))
    assert where in errors["json"]


@pytest.mark.parametrize(
    "field_value",
    [
        {"student": "yes"},
        {"student": 1},
        {"categories": "dibao"},
        {"categories": [1]},
        {"pension_tier": "500"},
        {"pension_tier": 500.5},
        {"name": 5},
        {"unknown_field": True},
    ],
)
def test_wrong_member_field_types(app: Flask, field_value: dict[str, Any]) -> None:
    member = {**_member(40), **field_value}
    errors = _errors(_quote(app, {"year": 2020, "members": [member]}))
    assert list(errors["json"]["members"]["0"]) == list(field_value)


def test_date_before_birth_is_not_due(app: Flask) -> None:
    newborn = id_number(date(2019, 12, 1))
    out = _quote(
        app,
        {"year": 2020, "paid_on": "2019-11-05", "members": [{"id_number": newborn}]},
    ).get_json()
    assert out["members"][0]["medical"]["due"] is False
    assert out["members"][0]["age"] == 0
