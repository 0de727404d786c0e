"""`flask collection demo-staff`: one agent per village of a town and the town office, once."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from api.auth.models import StaffAccount
from tests.collection.factories import make_town, make_village


def test_demo_staff_creates_one_agent_per_village_and_the_town_once(
    app: Flask, session: Any
) -> None:
    town = make_town(session)
    villages = [make_village(session, town) for _ in range(2)]
    session.commit()
    args = ["collection", "demo-staff", "--town", town.name]
    first = app.test_cli_runner().invoke(args=args)
    assert first.exit_code == 0, first.output
    assert "(3 created)" in first.output
    again = app.test_cli_runner().invoke(args=args)
    assert again.exit_code == 0 and "(0 created)" in again.output
    staff = session.scalars(
        select(StaffAccount).where(
            StaffAccount.username.like("%-T9%") | StaffAccount.username.like("agent-V9%")
        )
    ).all()
    by_name = {s.username: s for s in staff}
    for village in villages:
        agent = by_name[f"agent-{village.code}"]
        assert (agent.role, agent.village_id) == ("agent", village.id)
    office = by_name[f"town-{town.code}"]
    assert (office.role, office.town_id, office.village_id) == ("town", town.id, None)
    unknown = app.test_cli_runner().invoke(args=["collection", "demo-staff", "--town", "无此镇"])
    assert unknown.exit_code != 0 and "no town" in unknown.output
