"""Login end to end against the project's own sandbox (`sandbox.server`), default keys."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

from sandbox.server import create_sandbox_app
from sandbox.settings import SandboxSettings
from tests.auth.login_fakes import use_settings


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, create_sandbox_app(SandboxSettings.from_env({})), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_login_through_the_sandbox(app: Flask, sandbox_url: str) -> None:
    # Only the base URLs change: app ids, secrets and key files are the embedded defaults,
    # which must match the sandbox's own (what `make run` relies on).
    use_settings(app, WECHAT_API_BASE=f"{sandbox_url}/", ALIPAY_GATEWAY=f"{sandbox_url}/gateway.do")
    client = app.test_client()
    first = client.post("/api/v1/auth/wechat", json={"code": "resident1.a"})
    assert first.status_code == 200, first.get_json()
    assert client.post("/api/v1/auth/wechat", json={"code": "resident1.a"}).status_code == 401
    assert client.post("/api/v1/auth/wechat", json={"code": "resident1.b"}).status_code == 200
    alipay = client.post("/api/v1/auth/alipay", json={"auth_code": "resident2.a"})
    assert alipay.status_code == 200, alipay.get_json()
    reused = client.post("/api/v1/auth/alipay", json={"auth_code": "resident2.a"})
    assert reused.status_code == 401 and reused.get_json()["code"] == "login_failed"
