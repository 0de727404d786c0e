"""The premiums page only reads (`read_only_session`): on SQLite it must not queue behind a
writer's lock; on PostgreSQL it runs without a transaction, and the pooled connection must come
back transactional for the next request."""

from __future__ import annotations

import sqlite3
from typing import Any

from flask import Flask
from sqlalchemy import text

from tests.households.household_factories import (
    bearer,
    bind,
    make_household,
    make_resident,
    member,
)


def _bound(app: Flask) -> dict[str, Any]:
    with app.app_context():
        session = app.extensions["database"].session()
        household = make_household(session, members=[member("王小明", age=40)])
        account = make_resident(session)
        bind(session, account.id, household.members[0])
        session.commit()
        ids = {"household": household.id, "person": household.members[0].id, "account": account.id}
        app.extensions["database"].session.remove()
    return ids


def _premiums(app: Flask, ids: dict[str, Any]) -> Any:
    return app.test_client().get(
        f"/api/v1/households/{ids['household']}/premiums?year=2020",
        headers=bearer(app, ids["account"]),
    )


def test_read_only_page_then_a_write_on_the_same_pool(committing_app: Flask) -> None:
    app = committing_app
    ids = _bound(app)
    database = app.extensions["database"]
    database.engine.dispose()  # one pooled connection for both requests below
    assert _premiums(app, ids).status_code == 200
    with database.engine.connect() as conn:  # the connection the page used, back in the pool
        assert conn.get_isolation_level() != "AUTOCOMMIT"
    tier = app.test_client().put(
        f"/api/v1/households/{ids['household']}/members/{ids['person']}/pension-tier",
        json={"year": 2020, "tier": 500},
        headers=bearer(app, ids["account"]),
    )
    assert tier.status_code == 200
    page = _premiums(app, ids).get_json()
    assert page["members"][0]["pension"]["tier"] == 500
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM enrollments")).scalar() == 1


def test_premiums_read_while_a_writer_holds_the_sqlite_lock(committing_app: Flask) -> None:
    app = committing_app
    url = app.config["SETTINGS"].DATABASE_URL
    ids = _bound(app)
    if not url.startswith("sqlite"):
        return  # PostgreSQL readers never wait for writers (MVCC)
    writer = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a payment transaction in progress elsewhere
    try:
        response = _premiums(app, ids)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert response.status_code == 200, response.get_json()
