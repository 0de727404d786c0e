"""PostgreSQL outages met by the API through a TCP proxy (tests/outages.py), never by touching
the server: refused connections at checkout and connections dropped in use are 503
`database_unavailable` with Retry-After, the notify endpoints answer the gateway's own failure
reply (so it sends again), and once the database is back every payment is booked exactly once
with no callback-log row left `received` (issue 10, defects 4 and 5)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from api import create_app
from api.auth.service import create_staff
from api.db import utcnow
from api.payments.channels import wechat_v2_protocol as proto
from api.payments.models import ChannelNotification, Contribution, PaymentOrder
from api.payments.notify import store_raw, sweep_unfinished
from api.payments.outbox import OutboxMessage
from tests.households.household_factories import bearer, make_resident
from tests.outages import TcpProxy, proxy_for
from tests.payments.factories import Member, make_household, make_order
from tests.payments.gateway_messages import wechat_v2_payment

NOTIFY = "/api/v1/payments/notify/wechat"
XML = {"Content-Type": "text/xml"}


@pytest.fixture
def proxied(
    pg_committing_app: Flask, postgresql_database_url: str
) -> Iterator[tuple[Flask, TcpProxy]]:
    """An app whose every database connection goes through a proxy of its own."""
    from tests.conftest import test_config  # imported here: pytest would collect it as a test

    with proxy_for(postgresql_database_url) as (proxy, url):
        app = create_app(test_config(url))
        try:
            yield app, proxy
        finally:
            app.extensions["database"].dispose()


def _orders(app: Flask, count: int) -> list[tuple[str, int]]:
    """`count` open orders (one household each, two medical items of 28000): (no, amount)."""
    database = app.extensions["database"]
    with app.app_context():
        session = database.session()
        made = []
        for _ in range(count):
            family = make_household(session, [Member(date(1970, 1, 1)), Member(date(1972, 2, 2))])
            order = make_order(
                session, family, items=[(m, "medical", 28000) for m in family.members]
            )
            made.append((order.out_trade_no, order.amount_fen))
        session.commit()
        database.session.remove()
    return made


def _count(app: Flask, query: Any) -> Any:
    with app.extensions["database"].engine.connect() as conn:
        return conn.scalar(query)


def test_refused_connections_are_503_everywhere_then_all_is_booked_once(
    proxied: tuple[Flask, TcpProxy],
) -> None:
    app, proxy = proxied
    database = app.extensions["database"]
    with app.app_context():
        session = database.session()
        resident = make_resident(session)
        create_staff(session, username="fin-outage", role="finance", password="finance123")
        session.commit()
        database.session.remove()
    [(out_trade_no, amount)] = _orders(app, 1)
    body = wechat_v2_payment(app.config["SETTINGS"], out_trade_no=out_trade_no, amount_fen=amount)
    client = app.test_client()
    finance = {"username": "fin-outage", "password": "finance123"}

    proxy.refuse()
    answers = {
        "households": client.get("/api/v1/households", headers=bearer(app, resident.id)),
        "staff login": client.post("/api/v1/auth/staff", json=finance),
        "health": client.get("/health"),
        "notify": client.post(NOTIFY, data=body, headers=XML),
    }
    for name, answer in answers.items():
        assert answer.status_code == 503, (name, answer.data[:300])
        assert int(answer.headers.get("Retry-After", "0") or 0) >= 1 or name == "notify", name
    for name in ("households", "staff login", "health"):
        assert answers[name].get_json()["code"] == "database_unavailable"
    # The gateway's own failure reply, so WeChat sends the notification again.
    assert answers["notify"].data.startswith(b"<xml><return_code><![CDATA[FAIL]]>")

    proxy.restore()
    assert client.post(NOTIFY, data=body, headers=XML).data == proto.SUCCESS_XML
    assert client.post("/api/v1/auth/staff", json=finance).status_code == 200
    order_id = _count(app, select(PaymentOrder.id).where(PaymentOrder.out_trade_no == out_trade_no))
    assert _count(app, select(PaymentOrder.status).where(PaymentOrder.id == order_id)) == "paid"
    assert _count(app, select(func.count()).where(Contribution.order_id == order_id)) == 2
    assert (
        _count(
            app,
            select(func.count()).where(ChannelNotification.outcome == "received"),
        )
        == 0
    )


def test_connections_dropped_during_a_burst_of_notifications_lose_and_double_nothing(
    proxied: tuple[Flask, TcpProxy],
) -> None:
    """Each notification meets a cut (every connection dropped just before it, every third
    also refused); whatever was refused is sent again as the gateway would, the worker's
    sweep ends what was stored and not finished: each order paid once, two contributions and
    two tax records each, no row left `received`."""
    app, proxy = proxied
    orders = _orders(app, 12)
    client = app.test_client()
    pending = {
        no: wechat_v2_payment(app.config["SETTINGS"], out_trade_no=no, amount_fen=amount)
        for no, amount in orders
    }
    for i, (no, body) in enumerate(list(pending.items())):
        proxy.drop()
        if i % 3 == 0:
            proxy.refuse()
        answer = client.post(NOTIFY, data=body, headers=XML)
        assert answer.status_code in (200, 503), answer.data[:300]
        if answer.data == proto.SUCCESS_XML:
            del pending[no]
        proxy.restore()
    assert len(pending) >= 4  # the refused ones at least
    for no, body in pending.items():  # the gateway's retries, the database back
        assert client.post(NOTIFY, data=body, headers=XML).data == proto.SUCCESS_XML, no

    with app.app_context():
        sweep_unfinished(
            app.extensions["database"], app.config["SETTINGS"], older_than=timedelta(0)
        )
    numbers = [no for no, _ in orders]
    paid = select(func.count()).where(
        PaymentOrder.out_trade_no.in_(numbers), PaymentOrder.status == "paid"
    )
    assert _count(app, paid) == len(orders)
    contributions = select(func.count()).where(Contribution.out_trade_no.in_(numbers))
    assert _count(app, contributions) == 2 * len(orders)
    records = (
        select(func.count())
        .select_from(OutboxMessage)
        .join(Contribution, Contribution.id == OutboxMessage.contribution_id)
        .where(Contribution.out_trade_no.in_(numbers))
    )
    assert _count(app, records) == 2 * len(orders)
    assert _count(app, select(func.count()).where(ChannelNotification.outcome == "received")) == 0


def test_a_row_stored_before_the_database_dropped_is_superseded_by_the_retry_that_applied(
    pg_committing_app: Flask,
) -> None:
    """Issue 10, defect 5: the database dropped between storing a notification and finishing
    it; the gateway's retry stored a second row that applied, and the first stayed `received`
    forever with no order number. The worker's sweep ends it as `superseded`, naming the row
    that applied; a stored row no retry ever came for is applied by the sweep itself."""
    app = pg_committing_app
    database = app.extensions["database"]
    settings = app.config["SETTINGS"]
    (first_no, first_amount), (lone_no, lone_amount) = _orders(app, 2)
    first = wechat_v2_payment(settings, out_trade_no=first_no, amount_fen=first_amount)
    lone = wechat_v2_payment(settings, out_trade_no=lone_no, amount_fen=lone_amount)

    def stored_and_cut(body: bytes) -> int:
        # Step 1 of the notify flow committed; then the connection was gone.
        with app.app_context():
            log_id = store_raw(
                database, channel="wechat", path=NOTIFY, headers=XML, body=body, remote_addr=None
            )
            database.session.remove()
        return log_id

    stuck, unretried = stored_and_cut(first), stored_and_cut(lone)
    retry = app.test_client().post(NOTIFY, data=first, headers=XML)
    assert retry.data == proto.SUCCESS_XML

    with app.app_context():
        assert sweep_unfinished(database, settings).swept == 0  # too young: may be in flight
        session = database.session()
        session.execute(
            update(ChannelNotification)
            .where(ChannelNotification.id.in_([stuck, unretried]))
            .values(received_at=utcnow() - timedelta(minutes=10))
        )
        session.commit()
        report = sweep_unfinished(database, settings)
        assert report.swept == 2
        rows = {
            n.id: n
            for n in database.session().scalars(
                select(ChannelNotification).where(
                    ChannelNotification.out_trade_no.in_([first_no, lone_no])
                )
            )
        }
        database.session.remove()
    applied = next(n for n in rows.values() if n.out_trade_no == first_no and n.id != stuck)
    assert (applied.outcome, rows[stuck].outcome) == ("applied", "superseded")
    assert rows[stuck].detail == f"#{applied.id}"
    assert rows[unretried].outcome == "applied"
    paid = select(func.count()).where(
        PaymentOrder.out_trade_no.in_([first_no, lone_no]), PaymentOrder.status == "paid"
    )
    assert _count(app, paid) == 2
    contributions = select(func.count()).where(Contribution.out_trade_no.in_([first_no, lone_no]))
    assert _count(app, contributions) == 4
