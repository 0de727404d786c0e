"""Household fixtures; the factories themselves live in `household_factories` so that other
test packages can import them (`from tests.households.household_factories import ...`)."""

from __future__ import annotations

from tests.households.household_factories import (  # noqa: F401  (re-exported)
    MemberSpec,
    birth_for_age,
    id_number,
    make_household,
    make_person,
    make_town,
    make_village,
    member,
)
