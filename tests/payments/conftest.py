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
