"""Callers of every kind for the API-wide input tests: a bound resident, finance and tax staff."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from api.auth.service import create_staff
from tests.households.household_factories import bearer, bind, make_household, make_resident


@pytest.fixture
def callers(app: Flask) -> dict[str, Any]:
    """Authorization headers by role (`resident`, `finance`, `tax`) and the resident's household."""
    with app.app_context():
        session = app.extensions["database"].session()
        finance = create_staff(
            session, username="fin-fuzz", role="finance", password="pw-123456789"
        )
        tax = create_staff(session, username="tax-fuzz", role="tax", password="pw-123456789")
        household = make_household(session)
        resident = make_resident(session)
        bind(session, resident.id, household.members[0])
        session.commit()
        return {
            "resident": bearer(app, resident.id),
            "finance": bearer(app, finance.id, kind="staff"),
            "tax": bearer(app, tax.id, kind="staff"),
            "household": household.id,
            "person": household.members[0].id,
        }
