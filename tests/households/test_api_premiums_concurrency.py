"""The premiums page only reads: on SQLite it must not queue behind a writer's lock."""

from __future__ import annotations

import sqlite3

import pytest
from flask import Flask

from tests.households.household_factories import bearer, bind, make_household, make_resident


def test_premiums_read_while_a_writer_holds_the_lock(committing_app: Flask) -> None:
    app = committing_app
    url = app.config["SETTINGS"].DATABASE_URL
    if not url.startswith("sqlite"):
        pytest.skip("SQLite locking only")
    with app.app_context():
        session = app.extensions["database"].session()
        household = make_household(session)
        account = make_resident(session)
        bind(session, account.id, household.members[0])
        session.commit()
        household_id, account_id = household.id, account.id
        app.extensions["database"].session.remove()
    writer = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a payment transaction in progress elsewhere
    try:
        response = app.test_client().get(
            f"/api/v1/households/{household_id}/premiums?year=2020",
            headers=bearer(app, account_id),
        )
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert response.status_code == 200, response.get_json()
