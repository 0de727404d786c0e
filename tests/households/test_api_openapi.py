"""The resident endpoints are documented with their error alternatives and security."""

from __future__ import annotations

from flask import Flask

EXPECTED = {
    ("post", "/api/v1/auth/wechat"): {"200", "401", "422", "502"},
    ("post", "/api/v1/auth/alipay"): {"200", "401", "422", "502"},
    ("post", "/api/v1/auth/staff"): {"200", "401", "422", "429"},
    ("post", "/api/v1/premiums/quote"): {"200", "422"},
    ("post", "/api/v1/households/bind"): {"200", "401", "404", "422", "429"},
    ("get", "/api/v1/households/{household_id}/premiums"): {"200", "401", "404", "422"},
    ("put", "/api/v1/households/{household_id}/members/{person_id}/pension-tier"): {
        "200",
        "401",
        "404",
        "409",
        "422",
    },
}


def test_endpoints_documented(app: Flask) -> None:
    doc = app.test_client().get("/openapi.json").get_json()
    for (method, path), statuses in EXPECTED.items():
        operation = doc["paths"][path][method]
        assert statuses <= set(operation["responses"]), (method, path)
        assert operation.get("summary"), (method, path)
        guarded = path.startswith("/api/v1/households")
        assert (operation.get("security") == [{"bearerAuth": []}]) is guarded, (method, path)
