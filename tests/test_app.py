"""The application shell: health, OpenAPI document, JSON errors everywhere under /api."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import TEST_PII_ENV


def test_health_checks_the_database(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_openapi_document_is_served(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.")
    assert "bearerAuth" in doc["components"]["securitySchemes"]


def test_unknown_api_route_is_json_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    body = response.get_json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert body["message"] == "未找到"


def test_real_gateways_refuse_the_default_secret_and_a_pinned_date() -> None:
    import pytest

    from api.config import Config

    real = {
        "WECHAT_API_BASE": "https://api.weixin.qq.com/",
        "WECHAT_PAY_API_BASE": "https://api.mch.weixin.qq.com/",
        "ALIPAY_GATEWAY": "https://openapi.alipay.com/gateway.do",
    }
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Config.from_env({}, **real).validate()
    strong = "x" * 40
    with pytest.raises(ValueError, match="APP_TODAY"):
        Config.from_env({}, SECRET_KEY=strong, APP_TODAY="2019-11-05", **real).validate()
    Config.from_env({}, SECRET_KEY=strong, **real).validate()
    Config.from_env({}).validate()  # the sandbox defaults are fine on a laptop


def test_interactive_docs_are_served_without_a_cdn(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/docs/static/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    script = client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.data) > 100_000
    assert client.get("/docs/static/../../api/config.py").status_code == 404


def test_client_address_behind_a_trusted_proxy() -> None:
    from flask import request

    from api import create_app
    from api.config import Config

    for hops, expected in ((0, "10.0.0.1"), (1, "203.0.113.7")):
        app = create_app(
            Config.from_env(TEST_PII_ENV, DATABASE_URL="sqlite://", PROXY_HOPS=hops, TESTING=True)
        )

        @app.get("/whoami")
        def whoami() -> str:
            return request.remote_addr or ""

        reply = app.test_client().get(
            "/whoami",
            headers={"X-Forwarded-For": "203.0.113.7"},
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
        )
        assert reply.get_data(as_text=True) == expected
