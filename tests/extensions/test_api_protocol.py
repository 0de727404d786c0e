"""Issue 10, defect 9: HTTP and OpenAPI details a client relies on."""

from __future__ import annotations

from typing import Any

from flask import Flask

from api import MAX_URI_BYTES
from api.policy import available_years


def test_405_names_the_allowed_methods(app: Flask, callers: dict[str, Any]) -> None:
    response = app.test_client().delete("/api/v1/payments", headers=callers["resident"])
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"POST", "OPTIONS"}
    assert response.get_json()["code"] == "method_not_allowed"
    assert response.headers["Content-Type"].startswith("application/json")


def test_overlong_uri_is_a_json_414(app: Flask, callers: dict[str, Any]) -> None:
    client = app.test_client()
    long_query = "x" * (MAX_URI_BYTES + 1)
    response = client.get(f"/api/v1/finance/notifications?reason={long_query}",
                          headers=callers["finance"])  # fmt: skip
    assert response.status_code == 414
    assert response.get_json()["code"] == "uri_too_long"
    fits = client.get("/api/v1/finance/notifications?reason=x", headers=callers["finance"])
    assert fits.status_code == 200


def test_gunicorn_lets_long_uris_through_to_the_app() -> None:
    from pathlib import Path

    settings: dict[str, Any] = {}
    exec(Path("gunicorn.conf.py").read_text(), settings)
    assert settings["limit_request_line"] > MAX_URI_BYTES + len("GET  HTTP/1.1")
    run_local = Path("scripts/run-local").read_text()
    assert "--config gunicorn.conf.py" in run_local


def test_gunicorn_keeps_idle_connections_longer_than_a_client_pauses() -> None:
    """Issue 15: at gunicorn's default keep-alive (2 s) a client pausing about 2 s between two
    requests on one connection met a close in flight: ConnectionResetError(104) under load.
    `make run` and the benchmarks start gunicorn with this file and no --keep-alive flag."""
    from pathlib import Path

    settings: dict[str, Any] = {}
    exec(Path("gunicorn.conf.py").read_text(), settings)
    assert settings["keepalive"] >= 30
    assert "--keep-alive" not in Path("scripts/run-local").read_text()


def test_openapi_documents_the_real_contracts(app: Flask) -> None:
    spec = app.test_client().get("/openapi.json").get_json()
    paths = spec["paths"]
    order = paths["/api/v1/payments"]["post"]
    key = next(p for p in order["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header" and key["required"] is True

    wechat = paths["/api/v1/payments/notify/wechat"]["post"]["requestBody"]["content"]
    assert {"text/xml", "application/json"} <= set(wechat)
    alipay = paths["/api/v1/payments/notify/alipay"]["post"]
    assert set(alipay["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
    assert "text/plain" in alipay["responses"]["200"]["content"]

    export = paths["/api/v1/tax/export"]["get"]["responses"]["200"]["content"]
    assert "text/csv" in export and any("spreadsheetml" in ct for ct in export)
    log = paths["/api/v1/finance/notifications"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/csv"} <= set(log)

    bind = spec["components"]["schemas"]["Bind"]["properties"]["id_number"]
    assert bind["pattern"] == "^[0-9]{17}[0-9Xx]$"
    order_body = order["requestBody"]["content"]["application/json"]["schema"]
    order_schema = spec["components"]["schemas"][order_body["$ref"].rsplit("/", 1)[-1]]
    assert order_schema["properties"]["year"]["enum"] == available_years()


def test_export_sends_one_charset(app: Flask, callers: dict[str, Any]) -> None:
    response = app.test_client().get(
        "/api/v1/tax/export?insurance=medical&from=2019-11-01&to=2019-11-30",
        headers=callers["tax"],
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
