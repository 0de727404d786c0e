"""The hot read endpoints send prebuilt bodies (no marshmallow dump, see routes.as_dumped):
each body must be exactly what its response schema produces — same keys, no extra field
(nothing unmasked slips out), same types."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import pytest
from flask import Flask

from api.households.schemas import HouseholdPremiumsSchema, QuoteResponseSchema
from tests.auth.login_fakes import use_settings
from tests.households.household_factories import (
    bearer,
    bind,
    birth_for_age,
    id_number,
    make_household,
    make_resident,
    member,
)


def _round_trips(schema: ma.Schema, body: dict[str, Any]) -> None:
    loaded = schema.load(body)  # unknown fields raise; wrong types raise
    assert schema.dump(loaded) == body


@pytest.mark.parametrize("today", ["2019-10-05", "2019-11-05", "2019-12-21"])
def test_premiums_body_is_the_schema_output(app: Flask, today: str) -> None:
    use_settings(app, APP_TODAY=today)
    with app.app_context():
        session = app.extensions["database"].session()
        household = make_household(
            session,
            members=[
                member("王小明", age=40),
                member("李秀英", age=65, sex="F", categories=["dibao", "youfu"]),
                member("王明", age=3),
                member("赵大勇", age=50, categories=["disabled_severe"]),
                member("钱多", age=30, employee_medical=True, employee_pension=True),
            ],
        )
        account = make_resident(session)
        bind(session, account.id, household.members[0])
        session.commit()
        household_id, account_id = household.id, account.id
    response = app.test_client().get(
        f"/api/v1/households/{household_id}/premiums?year=2020", headers=bearer(app, account_id)
    )
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    # Chinese is sent as UTF-8, not \u escapes (as the app's JSON provider does elsewhere).
    assert "李*英".encode() in response.data and b"\\u" not in response.data
    _round_trips(HouseholdPremiumsSchema(), response.get_json())


def test_quote_body_is_the_schema_output(app: Flask) -> None:
    members = [
        {"id_number": id_number(birth_for_age(age)), "name": name, "categories": cats}
        for age, name, cats in [(40, "王小明", []), (70, "李", ["tekun"]), (1, "", [])]
    ]
    members[0]["pension_tier"] = 1000
    response = app.test_client().post(
        "/api/v1/premiums/quote", json={"year": 2020, "paid_on": "2019-11-05", "members": members}
    )
    assert response.status_code == 200
    _round_trips(QuoteResponseSchema(), response.get_json())
