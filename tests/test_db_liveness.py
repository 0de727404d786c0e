"""Pooled PostgreSQL connections: pinged after idling, trusted when just used, and a dropped
connection answered as 503 `database_unavailable` or retried, never a 500 (api.db)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from api.db import make_engine
from tests.households.household_factories import bearer, make_household, make_resident


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(admin: Engine, pid: int) -> None:
    """What a server restart or an idle timeout does to one pooled connection."""
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    time.sleep(0.2)  # let the backend go


@pytest.fixture
def pg_engines(postgresql_database_url: str) -> Iterator[tuple[str, Engine]]:
    admin = make_engine(postgresql_database_url, pool_size=1)
    yield postgresql_database_url, admin
    admin.dispose()


def test_a_connection_that_idled_is_pinged_and_replaced_unseen(
    pg_engines: tuple[str, Engine],
) -> None:
    url, admin = pg_engines
    engine = make_engine(url, pool_size=1, max_overflow=0, alive_window=0.05)
    try:
        first = _backend_pid(engine)
        _terminate(admin, first)  # idles 0.2 s > window
        second = _backend_pid(engine)  # the ping fails, the pool reconnects: no error
        assert second != first
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(pg_engines: tuple[str, Engine]) -> None:
    """The trade (`ping_when_idle`): inside the window the first statement finds the drop,
    and the pool is invalidated so the next checkout reconnects."""
    url, admin = pg_engines
    engine = make_engine(url, pool_size=1, max_overflow=0, alive_window=60.0)
    try:
        first = _backend_pid(engine)
        _terminate(admin, first)
        with pytest.raises(DBAPIError) as lost, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert lost.value.connection_invalidated
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def _kill_pooled_connections(app: Flask, admin: Engine) -> None:
    engine = app.extensions["database"].engine
    with engine.connect() as conn:  # a pooled connection, just checked in: inside the window
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    _terminate(admin, pid)


def test_api_answers_503_when_the_connection_drops_mid_request(
    pg_committing_app: Flask, pg_engines: tuple[str, Engine]
) -> None:
    from api import create_app
    from tests.conftest import test_config

    url, admin = pg_engines
    with pg_committing_app.app_context():
        session = pg_committing_app.extensions["database"].session()
        account = make_resident(session)
        make_household(session)
        session.commit()
    # Never pinged: the drop is met by the request's first statement (deterministically).
    app = create_app(test_config(url, DATABASE_PING_AFTER_IDLE_MS=3_600_000))
    headers = bearer(app, account.id)
    client = app.test_client()
    try:
        assert client.get("/api/v1/households", headers=headers).status_code == 200
        _kill_pooled_connections(app, admin)
        dropped = client.get("/api/v1/households", headers=headers)
        assert dropped.status_code == 503
        assert dropped.get_json()["code"] == "database_unavailable"
        assert dropped.headers["Retry-After"] == "1"
        assert client.get("/api/v1/households", headers=headers).status_code == 200
    finally:
        app.extensions["database"].dispose()


def test_a_notification_on_a_dropped_connection_is_stored_and_applied_once(
    pg_committing_app: Flask, pg_engines: tuple[str, Engine], caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import date

    from sqlalchemy import func, select

    from api import create_app
    from api.payments.channels import wechat_v2_protocol as proto
    from api.payments.models import ChannelNotification, Contribution, PaymentOrder
    from tests.conftest import test_config
    from tests.payments.factories import Member, make_order
    from tests.payments.factories import make_household as make_family
    from tests.payments.gateway_messages import wechat_v2_payment

    url, admin = pg_engines
    with pg_committing_app.app_context():
        session = pg_committing_app.extensions["database"].session()
        family = make_family(session, [Member(date(1970, 1, 1)), Member(date(1972, 2, 2))])
        order = make_order(session, family, items=[(m, "medical", 28000) for m in family.members])
        session.commit()
        out_trade_no, order_id = order.out_trade_no, order.id
    app = create_app(test_config(url, DATABASE_PING_AFTER_IDLE_MS=3_600_000))
    body = wechat_v2_payment(app.config["SETTINGS"], out_trade_no=out_trade_no, amount_fen=56000)
    try:
        _kill_pooled_connections(app, admin)
        reply = app.test_client().post(
            "/api/v1/payments/notify/wechat", data=body, headers={"Content-Type": "text/xml"}
        )
        assert reply.data == proto.SUCCESS_XML
        assert "connection lost, storing again" in caplog.text
        database = app.extensions["database"]
        with database.engine.connect() as conn:
            status = conn.scalar(select(PaymentOrder.status).where(PaymentOrder.id == order_id))
            booked = conn.scalar(select(func.count()).where(Contribution.order_id == order_id))
            logged = (
                conn.execute(
                    select(ChannelNotification.outcome).where(
                        ChannelNotification.out_trade_no == out_trade_no
                    )
                )
                .scalars()
                .all()
            )
        assert (status, booked, logged) == ("paid", 2, ["applied"])
    finally:
        app.extensions["database"].dispose()
