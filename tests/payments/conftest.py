"""Payments test fixtures: a live API server (real HTTP, real commits) and settings helpers.

A notification that must arrive over HTTP — from the sandbox's notifier, or from 20 threads at
once — needs the API served for real: werkzeug's threaded server on an ephemeral port, on the
app of `committing_app` / `pg_committing_app`, with PUBLIC_BASE_URL pointing at it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from api.config import Config


@dataclasses.dataclass
class LiveServer:
    app: Flask
    url: str


def use_settings(app: Flask, **overrides: Any) -> Config:
    """Replace the app's settings by a copy with `overrides` (restored by the app fixtures)."""
    settings: Config = dataclasses.replace(app.config["SETTINGS"], **overrides)
    app.config["SETTINGS"] = settings
    app.config.update(overrides)
    return settings


@contextmanager
def serve(app: Flask) -> Iterator[LiveServer]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    saved = app.config["SETTINGS"]
    use_settings(app, PUBLIC_BASE_URL=url)
    try:
        yield LiveServer(app, url)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.config["SETTINGS"] = saved
        app.config["PUBLIC_BASE_URL"] = saved.PUBLIC_BASE_URL


@pytest.fixture
def live_api(committing_app: Flask) -> Iterator[LiveServer]:
    """The API served over HTTP on both backends, with real commits."""
    with serve(committing_app) as live:
        yield live


@pytest.fixture
def pg_live_api(pg_committing_app: Flask) -> Iterator[LiveServer]:
    """The API served over HTTP on PostgreSQL (races SQLite's single writer would hide)."""
    with serve(pg_committing_app) as live:
        yield live


# The local sandbox (real gateway protocols, in-process) -----------------------------------------

#: Vendor delays squeezed (WeChat's 24h retry schedule in about 2 s, refunds settle at once).
SANDBOX_TIME_SCALE = 0.00002


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[Any]:
    from sandbox.server import SandboxServer
    from sandbox.settings import SandboxSettings

    settings = SandboxSettings.from_env(
        {},
        SANDBOX_TIME_SCALE=SANDBOX_TIME_SCALE,
        SANDBOX_REFUND_SECONDS=1.0,
        SANDBOX_NOTIFY_TIMEOUT=10.0,
    )
    server = SandboxServer(settings, port=0).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(_sandbox_server: Any) -> Iterator[Any]:
    """The running sandbox, emptied before each test."""
    _sandbox_server.sandbox.reset()
    yield _sandbox_server
    _sandbox_server.sandbox.notifier.wait_idle(10)


def _point_at_sandbox(app: Flask, sandbox: Any) -> None:
    use_settings(
        app,
        WECHAT_PAY_API_BASE=sandbox.base_url + "/",
        ALIPAY_GATEWAY=sandbox.base_url + "/gateway.do",
    )


@pytest.fixture
def shop(live_api: LiveServer, sandbox: Any) -> Iterator[LiveServer]:
    """The API served over HTTP (both backends) talking to the in-process sandbox."""
    saved = live_api.app.config["SETTINGS"]
    _point_at_sandbox(live_api.app, sandbox)
    yield live_api
    sandbox.sandbox.notifier.wait_idle(10)
    live_api.app.config["SETTINGS"] = saved


@pytest.fixture
def pg_shop(pg_live_api: LiveServer, sandbox: Any) -> Iterator[LiveServer]:
    saved = pg_live_api.app.config["SETTINGS"]
    _point_at_sandbox(pg_live_api.app, sandbox)
    yield pg_live_api
    sandbox.sandbox.notifier.wait_idle(10)
    pg_live_api.app.config["SETTINGS"] = saved
