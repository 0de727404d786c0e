"""Every bulk write ends with ANALYZE of the tables it filled (PostgreSQL), so the planner does
not plan a freshly loaded district as an empty schema (this machine's PostgreSQL runs with
autovacuum off). ANALYZE runs in the command's own transaction: within it, `pg_class.reltuples`
shows the rows it counted; a table never analysed has -1."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from tests.payments.factories import Member, make_household


def _reltuples(session: Any, table: str) -> float:
    return float(
        session.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}
        ).scalar_one()
    )


def _count(session: Any, table: str) -> int:
    return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def pg_app(app: Flask, database_url: str) -> Flask:
    if not database_url.startswith("postgresql"):
        pytest.skip("ANALYZE is PostgreSQL's; SQLite has nothing to refresh")
    return app


def test_demo_load_analyzes_what_it_loaded(pg_app: Flask, session: Any) -> None:
    result = pg_app.test_cli_runner().invoke(
        args=["demo", "load", "--seed", "5"], env={"DEMO_SCALE": "0.0005"}
    )
    assert result.exit_code == 0, result.output
    for table in ("households", "persons", "person_categories"):
        assert _count(session, table) > 0
        assert _reltuples(session, table) == _count(session, table), table


def test_government_batch_analyzes_contributions(pg_app: Flask, session: Any) -> None:
    pg_app.config["APP_TODAY"] = "2019-11-05"
    household = make_household(
        session, [Member(date(1970, 4, 1), categories=("dibao",), name="张低保")]
    )
    town = household.village.town.code
    session.commit()
    result = pg_app.test_cli_runner().invoke(
        args=["payments", "government-batch", "--year", "2020", "--town", town]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["persons"] == 1
    assert _reltuples(session, "contributions") == _count(session, "contributions") > 0


def test_a_dry_run_writes_and_analyzes_nothing(pg_app: Flask, session: Any) -> None:
    before = _reltuples(session, "contributions")
    household = make_household(
        session, [Member(date(1970, 4, 1), categories=("dibao",), name="张低保")]
    )
    session.commit()
    pg_app.config["APP_TODAY"] = "2019-11-05"
    result = pg_app.test_cli_runner().invoke(
        args=[
            "payments",
            "government-batch",
            "--year",
            "2020",
            "--town",
            household.village.town.code,
            "--dry-run",
        ]
    )
    assert result.exit_code == 0, result.output
    assert _reltuples(session, "contributions") == before


def test_roster_import_analyzes_what_it_wrote(pg_app: Flask, session: Any) -> None:
    from pathlib import Path

    mixed = Path(__file__).parents[1] / "households" / "fixtures" / "roster_mixed.csv"
    pg_app.config["APP_TODAY"] = "2019-11-05"
    result = pg_app.test_cli_runner().invoke(args=["roster", "import", str(mixed), "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert _reltuples(session, "persons") == _count(session, "persons") > 0
