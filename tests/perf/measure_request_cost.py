"""Time and CPU per request of the premiums page and the tier choice on a 200,000-person
district (the plan test's synthetic district, `test_request_plans._fill`), on PostgreSQL,
with the statistics as a bulk load leaves them (never analysed) and then after ANALYZE.

    .venv/bin/python -m tests.perf.measure_request_cost [--requests 200]

Run it once on this branch and once with the previous code first on PYTHONPATH to compare.
Prints, per request: wall ms, API-process CPU ms and PostgreSQL backend CPU ms (from /proc,
summed over the database's backends). A measurement, not a test: no assertion.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api import create_app
from tests.conftest import PG_ADMIN_URL
from tests.conftest import test_config as app_config
from tests.payments.factories import make_account, token_for
from tests.perf.test_request_plans import _fill

TICK = os.sysconf("SC_CLK_TCK")


def _pg_cpu(conn: Any, database: str) -> float:
    """CPU seconds used so far by the backends of `database` (same machine, /proc)."""
    total = 0.0
    pids = conn.execute(
        text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": database}
    ).scalars()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            continue
    return total


def _measure(app: Any, name: str, n: int, call: Any, admin: Any) -> None:
    with admin.connect() as conn:
        call()  # warm: connection, statement cache
        pg0, cpu0, t0 = _pg_cpu(conn, name), time.process_time(), time.perf_counter()
        for _ in range(n):
            call()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        pg = _pg_cpu(conn, name) - pg0
    print(f"    wall {wall / n * 1000:7.2f} ms  api cpu {cpu / n * 1000:6.2f} ms  "
          f"pg cpu {pg / n * 1000:6.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    n = parser.parse_args().requests
    name = f"ssi_cost_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    app = create_app(app_config(url))
    try:
        import flask_migrate

        with app.app_context():
            flask_migrate.upgrade()
        _fill(app)
        db = app.extensions["database"]
        household, persons = app.config["PLAN_HOUSEHOLD"], app.config["PLAN_PERSONS"]
        with app.app_context():
            session = db.session()
            from api.households.models import Household

            account = make_account(session, session.get(Household, household))
            session.commit()
            auth = {"Authorization": f"Bearer {token_for(app, account)}"}
            db.session.remove()
        app.config["APP_TODAY"] = "2019-11-05"
        client = app.test_client()
        base = f"/api/v1/households/{household}"

        def premiums() -> None:
            assert client.get(f"{base}/premiums?year=2020", headers=auth).status_code == 200

        tiers = iter(range(10**9))

        def tier() -> None:
            r = client.put(
                f"{base}/members/{persons[0]}/pension-tier",
                json={"year": 2020, "tier": (300, 500)[next(tiers) % 2]},
                headers=auth,
            )
            assert r.status_code == 200, r.get_json()

        for label in ("never analysed", "after ANALYZE"):
            if label == "after ANALYZE":
                with db.engine.begin() as conn:
                    conn.execute(text("ANALYZE"))
            print(f"{label} ({n} requests each):")
            print("  premiums page")
            _measure(app, name, n, premiums, admin)
            print("  tier choice")
            _measure(app, name, n, tier, admin)
    finally:
        app.extensions["database"].dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
