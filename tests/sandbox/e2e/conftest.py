"""End-to-end fixtures: the REAL API served over HTTP (werkzeug, threaded, real commits) with a
demo district loaded, talking to the in-process sandbox — and the sandbox's resident CLI
(`sandbox.scenario`) driving both, as `python -m sandbox pay --household` does.

The live server and settings helpers are the payments suite's (`tests/payments/conftest.py`);
the sandbox server is this directory's own, with a longer notify timeout (the API on SQLite
under a district's load may take more than tests/sandbox's 2 s to answer) and a short
out_of_order hold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from api.auth.models import StaffAccount
from api.auth.service import hash_password
from api.db import Base, Database
from api.households.demo import generate_roster, load_demo
from api.households.roster_files import write_roster
from sandbox.cli.client import ControlClient
from sandbox.scenario.roster import Household, read_roster
from sandbox.server import SandboxServer
from sandbox.settings import SandboxSettings
from tests.conftest import TEST_PII_ENV, migrated_app
from tests.payments.conftest import serve, use_settings

#: 24 h of WeChat retries in about 2 s; WeChat refunds settle at once.
TIME_SCALE = 0.00002
TODAY = date(2019, 11, 5)  # the concentrated payment phase of the 2020 window
DEMO_SEED = 42
#: About 130 persons in 50 households: every town, enough of every household shape.
SMALL_SCALE = 0.0003
FINANCE = ("finance-e2e", "finance-e2e-pw")


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[SandboxServer]:
    settings = SandboxSettings.from_env(
        {},
        SANDBOX_TIME_SCALE=TIME_SCALE,
        SANDBOX_REFUND_SECONDS=1.0,
        SANDBOX_NOTIFY_TIMEOUT=15.0,
        SANDBOX_OUT_OF_ORDER_HOLD=30.0,
    )
    server = SandboxServer(settings, port=0).start()
    yield server
    server.stop()


@dataclass
class District:
    """A live API with demo data, the sandbox, and the roster the data was loaded from."""

    app: Flask
    api_url: str
    sandbox: SandboxServer
    control: ControlClient
    roster_file: Path
    households: list[Household]

    def flask_env(self) -> dict[str, str]:
        """The environment a `flask --app wsgi` subprocess needs to act on this API."""
        settings = self.app.config["SETTINGS"]
        return {
            **os.environ,
            "DATABASE_URL": settings.DATABASE_URL,
            "SECRET_KEY": settings.SECRET_KEY,
            "PUBLIC_BASE_URL": self.api_url,
            "WECHAT_API_BASE": settings.WECHAT_API_BASE,
            "WECHAT_PAY_API_BASE": settings.WECHAT_PAY_API_BASE,
            "ALIPAY_GATEWAY": settings.ALIPAY_GATEWAY,
            "WECHAT_PAY_VERSION": settings.WECHAT_PAY_VERSION,
            "APP_TODAY": TODAY.isoformat(),
            "LOG_LEVEL": "WARNING",
            "TZ": "Asia/Shanghai",
            **TEST_PII_ENV,
        }

    def household(self, predicate: Callable[[Household], bool] | None = None) -> Household:
        """The first roster household with a living member (and `predicate`)."""
        return next(
            h for h in self.households if h.living() and (predicate is None or predicate(h))
        )

    def scalar(self, query: Any) -> Any:
        database: Database = self.app.extensions["database"]
        with self.app.app_context():
            value = database.session().scalar(query)
            database.session.remove()
        return value

    def rows(self, query: Any) -> list[Any]:
        database: Database = self.app.extensions["database"]
        with self.app.app_context():
            rows = list(database.session().execute(query).all())
            database.session.remove()
        return rows

    def cli(self, *args: str) -> str:
        """A `flask --app wsgi …` command run in-process on this app (its exit code checked)."""
        result = self.app.test_cli_runner().invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return str(result.output)

    def count(self, model: Any, *where: Any) -> int:
        return int(self.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@contextmanager
def district_on(
    app: Flask, sandbox: SandboxServer, roster_file: Path, *, scale: float
) -> Iterator[District]:
    """Serve `app` pointed at the sandbox on the demo date, with the demo district loaded."""
    saved_today = app.config.get("APP_TODAY", "")
    with serve(app) as live:
        saved = app.config["SETTINGS"]
        use_settings(
            app,
            WECHAT_API_BASE=sandbox.base_url + "/",
            WECHAT_PAY_API_BASE=sandbox.base_url + "/",
            ALIPAY_GATEWAY=sandbox.base_url + "/gateway.do",
        )
        app.config["APP_TODAY"] = TODAY.isoformat()
        try:
            database: Database = app.extensions["database"]
            with app.app_context(), database.job() as session:
                load_demo(session, scale=scale, seed=DEMO_SEED, today=TODAY)
                session.add(
                    StaffAccount(
                        username=FINANCE[0],
                        display_name="财务",
                        password_hash=hash_password(FINANCE[1]),
                        role="finance",
                    )
                )
            write_roster(roster_file, generate_roster(scale, DEMO_SEED, today=TODAY))
            yield District(
                app,
                live.url,
                sandbox,
                ControlClient(sandbox.base_url),
                roster_file,
                read_roster(roster_file),
            )
        finally:
            sandbox.sandbox.notifier.wait_idle(10)
            app.config["SETTINGS"] = saved
            app.config["APP_TODAY"] = saved_today


@pytest.fixture
def district(committing_app: Flask, sandbox: SandboxServer, tmp_path: Path) -> Iterator[District]:
    """A small demo district behind the live API, on SQLite and on PostgreSQL."""
    with district_on(committing_app, sandbox, tmp_path / "roster.csv", scale=SMALL_SCALE) as d:
        yield d


@pytest.fixture
def sqlite_committing_app(sqlite_database_url: str) -> Iterator[Flask]:
    """`committing_app` on SQLite only (the district scenario runs on the embedded default)."""
    app = migrated_app(sqlite_database_url)
    yield app
    database: Database = app.extensions["database"]
    database.session.remove()
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
