"""Revision 0005 encrypts existing rows in place (batched) and its downgrade decrypts them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import flask_migrate
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from api import create_app
from api.households.models import Person
from tests import conftest
from tests.conftest import PG_ADMIN_URL

BEFORE = "0005_backpay_newborns"
BODY = '{"id_number":"370406197906030317","name":"王小明"}'
PEOPLE = [(i, f"3704061979060{i:04d}X"[:18], f"王{i}明") for i in range(1, 13)]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('mig') / 'm.sqlite3'}"
        return
    name = f"ssi_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _raw(conn: object) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute(text("SELECT id_number, name FROM persons ORDER BY id"))]  # type: ignore[attr-defined]


def test_upgrade_encrypts_in_place_and_downgrade_decrypts(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PII_MIGRATION_BATCH", "5")  # 12 persons: three batches
    app = create_app(conftest.test_config(fresh_url))
    engine = app.extensions["database"].engine
    with app.app_context():
        flask_migrate.upgrade(revision=BEFORE)
    now = "2019-11-05 00:00:00+00:00"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO towns VALUES (1, 'T1', '城区', 0, 0, 0, 0)"))
        conn.execute(text("INSERT INTO villages VALUES (1, 1, 'V1', '村')"))
        conn.execute(text(f"INSERT INTO households VALUES (1, 1, '0001', '{now}')"))
        for pid, number, name in PEOPLE:
            conn.execute(
                text(
                    "INSERT INTO persons (id, household_id, id_number, name, birth_date, sex,"
                    " student, employee_pension, employee_medical, residence_permit,"
                    " created_at, updated_at) VALUES (:i, 1, :n, :m, '1979-06-03', 'M',"
                    " false, false, false, false, :t, :t)"
                ),
                {"i": pid, "n": number, "m": name, "t": now},
            )
        conn.execute(
            text(
                "INSERT INTO outbox_messages (id, event, contribution_id, schema_version, body,"
                " year, insurance, town_code, paid_at, created_at, status, attempts, deliveries,"
                " next_attempt_at) VALUES ('r1', 'contribution.paid', 1, 1, :b, 2020, 'medical',"
                " 'T1', :t, :t, 'sent', 0, 1, :t)"
            ),
            {"b": BODY, "t": now},
        )

    with app.app_context():
        flask_migrate.upgrade()
    with engine.connect() as conn:
        stored = _raw(conn)
        body = conn.execute(text("SELECT body FROM outbox_messages")).scalar_one()
    assert all(n.startswith("1:t1:") and m.startswith("1:t1:") for n, m in stored)
    assert "370406" not in body and body.startswith("1:t1:")
    with app.app_context():
        session = app.extensions["database"].session()
        people = session.execute(
            select(Person.id, Person.id_number, Person.name).order_by(Person.id)
        ).all()
        assert [tuple(p) for p in people] == PEOPLE
        found = session.scalars(select(Person.id).where(Person.id_number_is(PEOPLE[7][1]))).one()
        assert found == 8
        app.extensions["database"].session.remove()

    with app.app_context():
        flask_migrate.downgrade(revision=BEFORE)
    with engine.connect() as conn:
        assert _raw(conn) == [(n, m) for _, n, m in PEOPLE]
        assert conn.execute(text("SELECT body FROM outbox_messages")).scalar_one() == BODY
    engine.dispose()
