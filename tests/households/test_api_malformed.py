"""No endpoint of this package answers 500 (or HTML) to malformed input."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.households.household_factories import bearer, bind, make_household, make_resident

BODIES: list[dict[str, Any]] = [
    {},
    {"data": "{not json", "content_type": "application/json"},
    {"data": b"\xff\xfe\x00", "content_type": "application/json"},
    {"json": None},
    {"json": []},
    {"json": "text"},
    {"json": 12},
    {"json": {"year": None, "tier": None, "id_number": None, "name": None, "members": None}},
    {"json": {"year": [], "tier": {}, "id_number": [], "name": {}, "members": {}}},
    {"json": {"year": 10**30, "tier": -(10**30), "id_number": "x" * 10_000, "name": "王" * 500}},
    {"data": "year=2020", "content_type": "application/x-www-form-urlencoded"},
    {"data": "<xml/>", "content_type": "text/xml"},
]


@pytest.fixture
def bound(app: Flask) -> dict[str, Any]:
    with app.app_context():
        session = app.extensions["database"].session()
        household = make_household(session)
        account = make_resident(session)
        bind(session, account.id, household.members[0])
        session.commit()
        return {
            "headers": bearer(app, account.id),
            "household": household.id,
            "person": household.members[0].id,
        }


def _endpoints(bound: dict[str, Any]) -> list[tuple[str, str]]:
    h, p = bound["household"], bound["person"]
    return [
        ("POST", "/api/v1/premiums/quote"),
        ("POST", "/api/v1/households/bind"),
        ("PUT", f"/api/v1/households/{h}/members/{p}/pension-tier"),
    ]


@pytest.mark.parametrize("kwargs", BODIES)
def test_malformed_bodies_are_json_4xx(
    app: Flask, bound: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    client = app.test_client()
    for method, path in _endpoints(bound):
        response = client.open(path, method=method, headers=bound["headers"], **kwargs)
        assert 400 <= response.status_code < 500, (path, kwargs, response.status_code)
        body = response.get_json()
        assert body is not None and body["status"] == response.status_code
        assert isinstance(body["message"], str) and body["code"]


@pytest.mark.parametrize(
    "query",
    ["", "year=", "year=abc", "year=%00", "year=-1", "year=2020.0"],
)
def test_malformed_premium_queries(app: Flask, bound: dict[str, Any], query: str) -> None:
    response = app.test_client().get(
        f"/api/v1/households/{bound['household']}/premiums?{query}", headers=bound["headers"]
    )
    assert response.status_code == 422
    assert response.get_json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/households/abc/premiums?year=2020",
        "/api/v1/households/-1/premiums?year=2020",
        "/api/v1/households/0/premiums?year=2020",
        "/api/v1/households/99999999999999999999999/premiums?year=2020",
    ],
)
def test_odd_household_ids_are_404(app: Flask, bound: dict[str, Any], path: str) -> None:
    response = app.test_client().get(path, headers=bound["headers"])
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"
