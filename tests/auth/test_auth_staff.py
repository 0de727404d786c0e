"""Staff accounts: the CLI, role/scope validation and the scoping helpers."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select
from werkzeug.security import check_password_hash

from api.auth.guards import (
    staff_can_see_household,
    staff_can_see_town,
    staff_can_see_village,
    visible_village_ids,
)
from api.auth.models import StaffAccount
from tests.households.household_factories import make_household, make_town, make_village


def _invoke(app: Flask, *args: str, **kwargs: Any) -> Any:
    return app.test_cli_runner().invoke(args=["staff", "create", *args], **kwargs)


def _staff(app: Flask, username: str) -> StaffAccount | None:
    session = app.extensions["database"].session()
    return session.scalars(
        select(StaffAccount).where(StaffAccount.username == username)
    ).one_or_none()


def test_cli_creates_hashed_account_and_if_missing_is_idempotent(app: Flask) -> None:
    args = ("--username", "finance", "--role", "finance", "--password", "finance123")
    first = _invoke(app, *args)
    assert first.exit_code == 0, first.output
    with app.app_context():
        staff = _staff(app, "finance")
        assert staff is not None and staff.role == "finance"
        assert staff.password_hash != "finance123"
        assert check_password_hash(staff.password_hash, "finance123")
        assert staff.town_id is None and staff.village_id is None
    again = _invoke(app, *args, "--if-missing")
    assert again.exit_code == 0 and "nothing to do" in again.output
    duplicate = _invoke(app, *args)
    assert duplicate.exit_code != 0
    assert "用户名已存在" in duplicate.output


def test_cli_prompts_for_password(app: Flask) -> None:
    result = _invoke(app, "--username", "aud", "--role", "auditor", input="s3cret-pw\ns3cret-pw\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        staff = _staff(app, "aud")
        assert staff is not None and check_password_hash(staff.password_hash, "s3cret-pw")


def test_cli_validates_role_and_scope(app: Flask) -> None:
    with app.app_context():
        session = app.extensions["database"].session()
        town = make_town(session, name="西集镇", code="370406102")
        village = make_village(session, town=town, code="370406102001")
        session.commit()
    bad_role = _invoke(app, "--username", "x", "--role", "mayor", "--password", "password1")
    assert bad_role.exit_code != 0
    agent_without_village = _invoke(
        app, "--username", "a1", "--role", "agent", "--password", "password1"
    )
    assert agent_without_village.exit_code != 0 and "村居" in agent_without_village.output
    town_without_town = _invoke(app, "--username", "t1", "--role", "town", "--password", "pw123456")
    assert town_without_town.exit_code != 0 and "镇" in town_without_town.output
    unknown_village = _invoke(
        app, "--username", "a2", "--role", "agent", "--village", "nope", "--password", "pw123456"
    )
    assert unknown_village.exit_code != 0
    ok_agent = _invoke(
        app,
        "--username",
        "a3",
        "--role",
        "agent",
        "--village",
        village.code,
        "--password",
        "pw12345678",
    )
    assert ok_agent.exit_code == 0, ok_agent.output
    ok_town = _invoke(
        app, "--username", "t2", "--role", "town", "--town", "西集镇", "--password", "pw12345678"
    )
    assert ok_town.exit_code == 0, ok_town.output
    with app.app_context():
        agent = _staff(app, "a3")
        town_staff = _staff(app, "t2")
        assert agent is not None and agent.village_id == village.id and agent.town_id == town.id
        assert town_staff is not None and town_staff.town_id == town.id
        for name in ("x", "a1", "t1", "a2"):
            assert _staff(app, name) is None


def test_scoping_helpers(app: Flask) -> None:
    with app.app_context():
        session = app.extensions["database"].session()
        town_a, town_b = make_town(session), make_town(session)
        v_a1 = make_village(session, town=town_a)
        v_a2 = make_village(session, town=town_a)
        v_b1 = make_village(session, town=town_b)
        household = make_household(session, village=v_a2)
        agent = StaffAccount(
            username="ag",
            display_name="ag",
            password_hash="x",
            role="agent",
            town_id=town_a.id,
            village_id=v_a1.id,
            active=True,
        )
        town = StaffAccount(
            username="tw",
            display_name="tw",
            password_hash="x",
            role="town",
            town_id=town_a.id,
            active=True,
        )
        finance = StaffAccount(
            username="fi", display_name="fi", password_hash="x", role="finance", active=True
        )
        session.add_all([agent, town, finance])
        session.flush()
        assert staff_can_see_village(agent, v_a1)
        assert not staff_can_see_village(agent, v_a2)
        assert not staff_can_see_village(agent, v_b1)
        assert staff_can_see_village(town, v_a2) and not staff_can_see_village(town, v_b1)
        assert all(staff_can_see_village(finance, v) for v in (v_a1, v_a2, v_b1))
        assert not staff_can_see_household(session, agent, household)
        assert staff_can_see_household(session, town, household)
        assert staff_can_see_town(town, town_a.id) and not staff_can_see_town(town, town_b.id)
        assert not staff_can_see_town(agent, town_a.id)
        assert visible_village_ids(session, agent) == {v_a1.id}
        assert visible_village_ids(session, town) == {v_a1.id, v_a2.id}
        assert visible_village_ids(session, finance) is None
