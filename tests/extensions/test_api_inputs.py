"""Issue 10, defect 3: no input reaches a query it would break (NUL, 64-bit integers, year 1).

Each of these was a 500 on PostgreSQL (`PostgreSQL text fields cannot contain NUL`, `integer
out of range`, `OverflowError: date value out of range`); the guards in
`api.extensions.inputs` now answer them with a 4xx JSON body on every backend.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import pytest
from flask import Flask

from api.extensions.inputs import DATE_MAX, DATE_MIN, INT32_MAX, guard_schema
from api.extensions.smorest import Schema

NUL = "a\x00b"
BIG = INT32_MAX + 1

# (role, method, path, body): each one was a 500 before the guards.
CASES: list[tuple[str, str, str, Any]] = [
    ("anonymous", "POST", "/api/v1/auth/staff", {"username": NUL, "password": "x"}),
    ("anonymous", "POST", "/api/v1/auth/staff", {"username": "fin", "password": NUL}),
    ("resident", "GET", "/api/v1/payments/a%00", None),
    ("resident", "GET", "/api/v1/payments/%00", None),
    (
        "resident",
        "POST",
        "/api/v1/payments",
        {"household_id": BIG, "year": 2020, "channel": "wechat", "insurances": ["medical"]},
    ),
    (
        "resident",
        "POST",
        "/api/v1/payments",
        {"household_id": -BIG - 1, "year": 2020, "channel": "wechat", "insurances": ["medical"]},
    ),
    ("resident", "POST", "/api/v1/households/bind", {"id_number": NUL, "name": NUL}),
    ("resident", "GET", f"/api/v1/households/{BIG}/premiums?year=2020", None),
    (
        "resident",
        "PUT",
        f"/api/v1/households/{BIG}/members/{BIG}/pension-tier",
        {"year": 2020, "tier": 1},
    ),
    ("finance", "GET", "/api/v1/finance/notifications?out_trade_no=a%00", None),
    ("finance", "GET", "/api/v1/finance/notifications?reason=%00", None),
    ("finance", "GET", "/api/v1/finance/notifications?date_from=0001-01-01", None),
    ("finance", "GET", "/api/v1/finance/notifications?date_to=9999-12-31", None),
    ("finance", "GET", "/api/v1/finance/notifications?cursor=99999999999999999999", None),
    (
        "finance",
        "GET",
        f"/api/v1/finance/notifications?cursor={INT32_MAX}0&limit={INT32_MAX}0",
        None,
    ),
    (
        "finance",
        "POST",
        "/api/v1/finance/refunds",
        {
            "out_trade_no": NUL,
            "items": [{"person_id": BIG, "insurance": "medical"}],
            "reason": "deceased",
            "note": NUL,
        },
    ),
    ("tax", "GET", "/api/v1/tax/records?town=%00", None),
    ("tax", "GET", "/api/v1/tax/records?offset=99999999999999999999", None),
    ("tax", "GET", f"/api/v1/tax/records?contribution_id={BIG}", None),
    ("tax", "GET", "/api/v1/tax/export?insurance=medical&from=0001-01-01&to=2020-01-01", None),
    ("tax", "GET", "/api/v1/tax/export?insurance=medical&from=2020-01-01&to=9999-12-31", None),
    (
        "tax",
        "GET",
        "/api/v1/tax/export?insurance=medical&from=2020-01-01&to=2020-02-01&town=%00",
        None,
    ),
    (
        "tax",
        "POST",
        "/api/v1/tax/acknowledgements",
        {"acknowledgements": [{"record_id": NUL, "status": "booked"}]},
    ),
    (
        "tax",
        "POST",
        "/api/v1/tax/acknowledgements",
        # a lone surrogate, as JSON allows it to be written
        '{"acknowledgements": [{"record_id": "r1", "status": "rejected", "reason": "\\ud800"}]}',
    ),
]


@pytest.mark.parametrize(("role", "method", "path", "body"), CASES)
def test_unstorable_input_is_a_4xx_json_answer(
    app: Flask, callers: dict[str, Any], role: str, method: str, path: str, body: Any
) -> None:
    headers = dict(callers.get(role, {}))
    if path == "/api/v1/payments" and method == "POST":
        headers["Idempotency-Key"] = f"k-{abs(body['household_id'])}"
    sent = (
        {"data": body, "content_type": "application/json"}
        if isinstance(body, str)
        else {"json": body}
    )
    response = app.test_client().open(path, method=method, headers=headers, **sent)
    assert 400 <= response.status_code < 500, (path, response.status_code, response.data[:300])
    payload = response.get_json()
    assert payload["status"] == response.status_code and payload["code"]


def test_guards_reach_nested_and_listed_fields() -> None:
    class Line(Schema):
        n = ma.fields.Integer()

    class Body(Schema):
        lines = ma.fields.List(ma.fields.Nested(Line))
        names = ma.fields.List(ma.fields.String())
        day = ma.fields.Date()

    schema = Body()
    guard_schema(schema)
    errors = schema.validate({"lines": [{"n": BIG}], "names": ["ok", NUL], "day": "0001-01-01"})
    assert set(errors) == {"lines", "names", "day"}
    assert (
        schema.validate({"lines": [{"n": -5}], "names": ["王"], "day": DATE_MIN.isoformat()}) == {}
    )
    assert "day" in schema.validate({"day": "2101-01-01"}) and DATE_MAX.year == 2100


def test_guarding_twice_adds_nothing() -> None:
    class Body(Schema):
        n = ma.fields.Integer()

    schema = Body()
    guard_schema(schema)
    guard_schema(schema)
    assert len(schema.fields["n"].validators) == 1


def test_openapi_documents_the_integer_bounds(app: Flask) -> None:
    spec = app.test_client().get("/openapi.json").get_json()
    params = spec["paths"]["/api/v1/tax/records"]["get"]["parameters"]
    offset = next(p for p in params if p["name"] == "offset")
    assert offset["schema"]["minimum"] == 0 and offset["schema"]["maximum"] == INT32_MAX
    path_params = spec["paths"]["/api/v1/households/{household_id}/premiums"]["parameters"]
    assert path_params[0]["schema"]["maximum"] == INT32_MAX
