"""Shared fixtures: one schema per backend per run, one rolled-back transaction per test.

The schema is built through `alembic upgrade head` (so the migrations are tested) once per
backend: SQLite in a temporary file and PostgreSQL in a throw-away database on the local server
(`TEST_PG_URL`). Database tests take the `app` fixture, parametrised over both backends; each
test runs inside a transaction rolled back at the end, with the app's session joined to it
through savepoints, so services may commit freely (Warehouse / Dispatch style).

PostgreSQL tests skip only when the server is unreachable AND `REQUIRE_POSTGRES` is unset;
`.ci/run` sets it, so on CI a missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api import create_app
from api.config import Config
from api.db import Base, Database

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", "postgresql"]
# Fixed test keys (api/pii): never used outside the test suite.
TEST_PII_KEYS = "t1:" + "dGVzdC1waWktZGF0YS1rZXktMzItYnl0ZXMtbG9uZyE="
TEST_PII_INDEX_KEYS = "ti1:" + "dGVzdC1waWktaW5kZXgta2V5LTMyLWJ5dGVzLWxvbmc="
# What a `flask --app wsgi ...` subprocess of a test needs to read the test database.
TEST_PII_ENV = {"PII_KEYS": TEST_PII_KEYS, "PII_INDEX_KEYS": TEST_PII_INDEX_KEYS}

_apps: dict[str, Flask] = {}


def _require_pg() -> bool:
    return os.environ.get("REQUIRE_POSTGRES", "") not in ("", "0", "false")


@pytest.fixture(scope="session")
def postgresql_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    name = f"ssi_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the server is down or unreachable
        admin.dispose()
        if _require_pg():
            pytest.fail(f"PostgreSQL required but unreachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    for app in [a for k, a in _apps.items() if k == url]:
        app.extensions["database"].dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


def test_config(database_url: str, **overrides: Any) -> Config:
    """The configuration every test app uses: the real defaults but a test database."""
    return Config.from_env(
        {},
        DATABASE_URL=database_url,
        TESTING=True,
        SECRET_KEY="test-secret",
        LOG_LEVEL="WARNING",
        **{"PII_KEYS": TEST_PII_KEYS, "PII_INDEX_KEYS": TEST_PII_INDEX_KEYS, **overrides},
    )


def migrated_app(database_url: str) -> Flask:
    """One app per database URL per run, with the schema built by the migrations."""
    if database_url not in _apps:
        import flask_migrate

        app = create_app(test_config(database_url))
        with app.app_context():
            flask_migrate.upgrade()
        _apps[database_url] = app
    return _apps[database_url]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_database_url")
    return url


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """The app on one backend, every test inside a transaction that is rolled back."""
    flask_app = migrated_app(database_url)
    database: Database = flask_app.extensions["database"]
    connection = database.engine.connect()
    outer = connection.begin()
    database.session.remove()
    database.session.configure(bind=connection, join_transaction_mode="create_savepoint")
    saved_config = dict(flask_app.config)
    try:
        yield flask_app
    finally:
        flask_app.config.clear()
        flask_app.config.update(saved_config)
        database.session.remove()
        database.session.configure(
            bind=database.engine, join_transaction_mode="conditional_savepoint"
        )
        outer.rollback()
        connection.close()


@pytest.fixture
def committing_app(database_url: str) -> Iterator[Flask]:
    """The app with real commits (live servers, concurrency); every table emptied afterwards."""
    yield from _committing(migrated_app(database_url))


@pytest.fixture
def pg_committing_app(postgresql_database_url: str) -> Iterator[Flask]:
    """PostgreSQL only: for races that SQLite's single writer would hide."""
    yield from _committing(migrated_app(postgresql_database_url))


def _committing(flask_app: Flask) -> Iterator[Flask]:
    """Yield the run-wide app, then empty every table and put its config back as it was: a
    test that pins `APP_TODAY` (or any setting) must not leak it into the tests after it."""
    saved_config = dict(flask_app.config)
    try:
        yield flask_app
    finally:
        flask_app.config.clear()
        flask_app.config.update(saved_config)
        database: Database = flask_app.extensions["database"]
        database.session.remove()
        with database.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def session(app: Flask) -> Iterator[Any]:
    with app.app_context():
        yield app.extensions["database"].session()
