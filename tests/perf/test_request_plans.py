"""Plan regression: every statement of the resident request paths stays index-driven on a
large district, whatever the statistics and whichever plan PostgreSQL picks.

Why: a plan that is right only after `ANALYZE` is luck. At full scale `paid_keys` (run by the
tier choice) scanned every contribution of the year under its generic plan, because the status
travelled as a parameter (`status = $3`) that the partial index on paid contributions cannot
serve, and the machine's PostgreSQL refreshes no statistics (autovacuum off). See the README
("Database plans").

How: a throw-away PostgreSQL database of its own; a small real household made through the
models (encrypted ID number and name) and, around it, a synthetic district inserted in bulk with
generate_series (200,000 persons, 70,000 households, a year's contributions, orders, items,
callback log, outbox, accounts and bindings) — seconds, not minutes. The real endpoints are
driven through the Flask test client (login and payment through the in-process sandbox) while
a `before_cursor_execute` listener records every statement with its parameters. Each recorded
statement is then PREPAREd and EXPLAINed (never executed again) under
`plan_cache_mode = force_generic_plan` and `force_custom_plan`, first with no statistics at all
(never analysed, autovacuum off for these tables), then after `ANALYZE`. The test fails on a
Seq Scan of a large table, on an index scan that does not constrain the index's leading column
(a walk of the whole index: what `paid_keys` did), on a read repeated within one request, and
if the app's connections have JIT on.

PostgreSQL only; it skips like tests/conftest.py's PostgreSQL fixtures (unreachable server and
REQUIRE_POSTGRES unset).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from api import create_app
from api.auth.models import StaffAccount
from api.auth.tokens import issue_token
from api.db import Database
from tests.conftest import PG_ADMIN_URL, _require_pg
from tests.conftest import test_config as app_config
from tests.payments.conftest import use_settings
from tests.payments.factories import Member, make_household

PERSONS = 200_000
HOUSEHOLDS = 70_000
ORDERS = 50_000
# A Seq Scan of one of these on a request path is a defect at full scale.
LARGE = frozenset(
    {
        "persons",
        "households",
        "contributions",
        "payment_orders",
        "payment_order_items",
        "payment_order_events",
        "channel_notifications",
        "outbox_messages",
        "resident_accounts",
        "household_bindings",
        "person_categories",
        "enrollments",
    }
)
_BULK = [
    """INSERT INTO households (village_id, household_no, created_at)
       SELECT :village, 'B' || g, now() FROM generate_series(1, :households) g""",
    """INSERT INTO persons (household_id, id_number, name, birth_date, sex, student,
           employee_pension, employee_medical, residence_permit, created_at, updated_at,
           id_number_index)
       SELECT :h0 + (g % :households), t.id_number, t.name, date '1950-01-01' + (g % 20000),
              '1', false, false, false, false, now(), now(), 'bulk-' || g
       FROM generate_series(1, :persons) g, (SELECT id_number, name FROM persons LIMIT 1) t""",
    """INSERT INTO person_categories (person_id, category, source)
       SELECT id, 'low_income', 'roster' FROM persons WHERE id >= :p0 AND id % 5 = 0""",
    """INSERT INTO enrollments (person_id, insurance, year, pension_tier, updated_at)
       SELECT id, 'pension', 2020, 300, now() FROM persons WHERE id >= :p0 AND id % 2 = 0""",
    """INSERT INTO contributions (person_id, household_id, insurance, year, amount_fen,
           government_pays_fen, subsidy_fen, source, paid_at, late, benefit_start, status,
           created_at, kind)
       SELECT p.id, p.household_id, ins, 2020, 28000, 0, 0, 'wechat', now(), false,
              date '2020-01-01', CASE WHEN p.id % 50 = 0 THEN 'reversed' ELSE 'paid' END,
              now(), 'premium'
       FROM persons p, (VALUES ('medical'), ('pension')) v(ins)
       WHERE p.id >= :p0 AND (ins = 'medical' OR p.id % 2 = 0)""",
    """INSERT INTO resident_accounts (channel, external_id, created_at, last_login_at)
       SELECT 'wechat', 'bulk-' || g, now(), now() FROM generate_series(1, :orders) g""",
    """INSERT INTO household_bindings (account_id, household_id, person_id, created_at)
       SELECT a.id, p.household_id, p.id, now()
       FROM resident_accounts a JOIN persons p ON p.id = :p0 + (a.id - :a0) * 3
       WHERE a.id >= :a0""",
    """INSERT INTO payment_orders (out_trade_no, channel, scene, household_id, account_id, year,
           insurances, amount_fen, description, status, late, priced_on, expires_at,
           client_ip, refunded_fen, created_at, updated_at, paid_at, transaction_id)
       SELECT 'BULK' || g, 'wechat', 'miniprogram', :h0 + g, NULL, 2020, 'medical', 56000,
              'bulk', CASE WHEN g % 100 = 0 THEN 'closed' ELSE 'paid' END, false, '2019-11-05',
              now(), '127.0.0.1', 0, now() - interval '1 day', now(), now(), 'T' || g
       FROM generate_series(1, :orders) g""",
    """INSERT INTO payment_order_items (order_id, person_id, insurance, year, amount_fen,
           government_pays_fen, subsidy_fen, late, rule, kind)
       SELECT o.id, p.id, 'medical', 2020, 28000, 0, 0, false, 'medical', 'premium'
       FROM payment_orders o JOIN persons p ON p.household_id = o.household_id
       WHERE o.out_trade_no LIKE 'BULK%'""",
    """INSERT INTO payment_order_events (order_id, entity, from_state, to_state, actor, reason,
           at)
       SELECT id, 'order', 'open', status, 'notify', 'paid', now() FROM payment_orders
       WHERE out_trade_no LIKE 'BULK%'""",
    """INSERT INTO channel_notifications (channel, path, raw_body, headers, received_at,
           outcome, out_trade_no, order_id, amount_fen)
       SELECT 'wechat', '/api/v1/payments/notify/wechat', '\\x00'::bytea, '{}', now(),
              'applied', out_trade_no, id, amount_fen
       FROM payment_orders WHERE out_trade_no LIKE 'BULK%'""",
    """INSERT INTO outbox_messages (id, event, contribution_id, schema_version, body, year,
           insurance, town_code, paid_at, created_at, status, attempts, deliveries,
           next_attempt_at)
       SELECT 'bulk-' || c.id, 'contribution.paid', c.id, 1, '{}', 2020, c.insurance, 'T',
              now(), now(), 'acknowledged', 1, 1, now()
       FROM contributions c WHERE c.person_id >= :p0 AND c.person_id % 4 = 0""",
]


# The district -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def district() -> Iterator[Flask]:
    """An app on a throw-away database holding a large synthetic district (never analysed)."""
    name = f"ssi_plans_{uuid.uuid4().hex[:10]}"
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
    app = create_app(app_config(url))
    try:
        import flask_migrate

        with app.app_context():
            flask_migrate.upgrade()
        _fill(app)
        yield app
    finally:
        app.extensions["database"].dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fill(app: Flask) -> None:
    database: Database = app.extensions["database"]
    with app.app_context():
        session = database.session()
        household = make_household(
            session,
            [
                Member(birth=date(1980, 3, 1), name="王小明"),
                Member(birth=date(1984, 7, 9), name="李小红"),
                Member(birth=date(2012, 5, 5), name="王小小", student=True),
            ],
        )
        session.commit()
        app.config["PLAN_HOUSEHOLD"] = household.id
        app.config["PLAN_PERSONS"] = [p.id for p in household.members]
        app.config["PLAN_ID_NUMBER"] = household.members[0].id_number
        finance = StaffAccount(
            username="plans-finance", display_name="财务", password_hash="x", role="finance"
        )
        session.add(finance)
        session.commit()
        app.config["PLAN_FINANCE_TOKEN"] = issue_token(
            secret_key=app.config["SETTINGS"].SECRET_KEY, kind="staff", account_id=finance.id
        )
        database.session.remove()
    with database.engine.begin() as conn:
        for (table,) in conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ):
            conn.execute(text(f'ALTER TABLE "{table}" SET (autovacuum_enabled = off)'))
        village = conn.scalar(text("SELECT village_id FROM households LIMIT 1"))
        values: dict[str, Any] = {
            "village": village,
            "households": HOUSEHOLDS,
            "persons": PERSONS,
            "orders": ORDERS,
        }
        for statement in _BULK:
            if ":h0" in statement:
                values["h0"] = conn.scalar(
                    text("SELECT min(id) FROM households WHERE household_no LIKE 'B%'")
                )
            if ":p0" in statement:
                values["p0"] = conn.scalar(
                    text("SELECT min(id) FROM persons WHERE id_number_index LIKE 'bulk-%'")
                )
            if ":a0" in statement:
                values["a0"] = conn.scalar(
                    text("SELECT min(id) FROM resident_accounts WHERE external_id LIKE 'bulk-%'")
                )
            used = {k: v for k, v in values.items() if f":{k}" in statement}
            conn.execute(text(statement), used)


# Driving the request paths ----------------------------------------------------------------------


def _journey(app: Flask, sandbox: Any) -> list[tuple[str, str, Any]]:
    """Drive a resident's whole journey; return (step, statement, parameters) as executed."""
    use_settings(
        app,
        WECHAT_API_BASE=sandbox.base_url + "/",
        WECHAT_PAY_API_BASE=sandbox.base_url + "/",
        ALIPAY_GATEWAY=sandbox.base_url + "/gateway.do",
    )
    app.config["APP_TODAY"] = "2019-11-05"
    engine = app.extensions["database"].engine
    seen: list[tuple[str, str, Any]] = []
    step = ["?"]

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _c: Any, many: bool):  # type: ignore[no-untyped-def]
        if not many:
            seen.append((step[0], statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    client = app.test_client()
    household, persons = app.config["PLAN_HOUSEHOLD"], app.config["PLAN_PERSONS"]

    def call(name: str, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        step[0] = f"{name}#{len(seen)}"  # one label per request
        response = client.open(path, method=method, **kwargs)
        assert response.status_code == expect, (name, response.get_json())
        return response.get_json()

    try:
        token = call("login", "POST", "/api/v1/auth/wechat", 200, json={"code": "plans.a"})["token"]
        auth = {"Authorization": f"Bearer {token}"}
        call(
            "bind",
            "POST",
            "/api/v1/households/bind",
            200,
            json={"id_number": app.config["PLAN_ID_NUMBER"], "name": "王小明"},
            headers=auth,
        )
        call("households", "GET", "/api/v1/households", 200, headers=auth)
        base = f"/api/v1/households/{household}"
        call("premiums", "GET", f"{base}/premiums?year=2020", 200, headers=auth)
        for person in persons[:2]:
            call(
                "tier",
                "PUT",
                f"{base}/members/{person}/pension-tier",
                200,
                json={"year": 2020, "tier": 300},
                headers=auth,
            )
        order = call(
            "order",
            "POST",
            "/api/v1/payments",
            201,
            json={
                "household_id": household,
                "year": 2020,
                "channel": "wechat",
                "insurances": ["medical", "pension"],
            },
            headers={**auth, "Idempotency-Key": "plans-1"},
        )
        call("status", "GET", f"/api/v1/payments/{order['out_trade_no']}", 200, headers=auth)
        call("premiums", "GET", f"{base}/premiums?year=2020", 200, headers=auth)
        # Finance's callback log, a page and the next (cursor), and one order's rows.
        staff = {"Authorization": f"Bearer {app.config['PLAN_FINANCE_TOKEN']}"}
        log = "/api/v1/finance/notifications"
        step[0] = "finance"
        first = client.get(f"{log}?limit=50", headers=staff)
        assert first.status_code == 200 and len(first.get_json()) == 50
        cursor = first.headers["X-Next-Cursor"]
        call("finance", "GET", f"{log}?limit=50&cursor={cursor}", 200, headers=staff)
        call("finance", "GET", f"{log}?out_trade_no=BULK77", 200, headers=staff)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


# Planning them ----------------------------------------------------------------------------------

_NAMED = re.compile(r"%\((\w+)\)s")
_EXPLAINED = re.compile(r"^\s*(SELECT|UPDATE|DELETE|WITH|INSERT)\b", re.IGNORECASE)


def _full_scans(plan: dict[str, Any], leading: dict[str, Any], limited: bool = False) -> list[str]:
    """Scans of a large table that read all of it: a Seq Scan, or an index scan whose
    condition does not constrain the index's leading column (`paid_keys`'s old generic plan
    walked every 2020 entry of ix_contributions_household_year with `year = $2` only). An
    index walked in order under a LIMIT (newest first, keyset pages) is not a full scan."""
    found = []
    table = plan.get("Relation Name")
    index = plan.get("Index Name")
    if table is None and index is not None:  # a Bitmap Index Scan names only its index
        table = leading.get(index, ("", "", False))[0]
    if table in LARGE:
        if plan.get("Node Type") == "Seq Scan":
            found.append(f"Seq Scan on {table}")
        elif index is not None and not leading[index][2]:
            # (Walking a small partial index whole — the open orders — is not a full scan: its
            # predicate bounds it, and the planner picks it only while it is small.)
            column = leading[index][1]
            cond = plan.get("Index Cond", "")
            if (
                not re.search(rf"\(\s*(\w+\.)?{column}\)?(::[\w ]+)?\s*(=|<|>)", cond)
                and not limited
            ):
                found.append(f"full index scan of {index} ({cond or 'no condition'})")
    limited = limited or plan.get("Node Type") == "Limit"
    for child in plan.get("Plans", []):
        found.extend(_full_scans(child, leading, limited))
    return found


_LEADING = """
    SELECT i.relname, t.relname, a.attname,
           x.indpred IS NOT NULL AND pg_relation_size(i.oid) <= 8 * 8192 AS small_partial
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE n.nspname = 'public'
"""


def _plans(app: Flask, seen: list[tuple[str, str, Any]]) -> list[str]:
    """Every (step, mode, table) where a recorded statement's plan scans a large table."""
    from psycopg import sql

    problems = []
    engine = app.extensions["database"].engine
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        done: set[str] = set()
        # A cost estimate made without statistics can pass jit_above_cost: JIT compiling took
        # ~11 ms per premiums page (api/db.py turns it off on every connection).
        if conn.exec_driver_sql("SHOW jit").scalar() != "off":
            problems.append("JIT is on for the app's connections")
        leading = {
            index: (table, column, small)
            for index, table, column, small in conn.exec_driver_sql(_LEADING).all()
        }
        for number, (step, statement, parameters) in enumerate(seen):
            if not _EXPLAINED.match(statement) or statement in done:
                continue
            done.add(statement)
            names: list[str] = []

            def position(match: re.Match[str], names: list[str] = names) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            prepared = _NAMED.sub(position, statement).replace("%%", "%")
            literals = [sql.Literal(_plain(parameters[n])).as_string(raw) for n in names]
            conn.exec_driver_sql(f"PREPARE plan_{number} AS {prepared}")
            arguments = f"({', '.join(literals)})" if literals else ""
            for mode in ("force_generic_plan", "force_custom_plan"):
                conn.exec_driver_sql(f"SET plan_cache_mode = {mode}")
                (plan,) = conn.exec_driver_sql(
                    f"EXPLAIN (FORMAT JSON) EXECUTE plan_{number}{arguments}"
                ).scalar_one()
                for table in _full_scans(plan["Plan"], leading):
                    problems.append(f"{step} [{mode}] {table}: {' '.join(statement.split())}")
            conn.exec_driver_sql(f"DEALLOCATE plan_{number}")
        conn.exec_driver_sql("RESET plan_cache_mode")
        conn.rollback()
    return problems


def _plain(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def test_request_paths_never_scan_a_large_table(district: Flask, sandbox: Any) -> None:
    seen = _journey(district, sandbox)
    steps = {step.split("#")[0] for step, _, _ in seen}
    assert {
        "login",
        "bind",
        "households",
        "premiums",
        "tier",
        "order",
        "status",
        "finance",
    } <= steps
    # No read repeated within a request (the tier choice ran `paid_keys` twice).
    reads = [
        (step, statement, repr(sorted(parameters.items())))
        for step, statement, parameters in seen
        if statement.lstrip().upper().startswith("SELECT")
    ]
    problems = sorted(
        {f"{r[0]} repeated: {' '.join(r[1].split())}" for r in reads if reads.count(r) > 1}
    )
    problems += _plans(district, seen)  # no statistics at all
    assert not problems, "\n".join(problems)
    with district.extensions["database"].engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    problems = _plans(district, seen)  # fresh statistics
    assert not problems, "\n".join(problems)
