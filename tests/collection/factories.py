"""Factories for collection tests: villages with households, agents and town offices."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from api.auth.models import HouseholdBinding, ResidentAccount, StaffAccount
from api.auth.tokens import issue_token
from api.households.models import Household, Town, Village
from tests.payments import factories as payments_factories
from tests.payments.factories import Member

_seq = itertools.count(1)
TODAY = "2019-11-05"  # the concentrated payment phase of the 2020 window
FAMILY = [
    Member(date(1966, 9, 14), name="刘明东"),
    Member(date(1968, 3, 2), name="邓秀兰"),
    Member(date(2010, 6, 1), name="刘小宝"),
]


def make_town(session: Session) -> Town:
    n = next(_seq)
    town = Town(code=f"T9{n:07d}", name=f"收款测试镇{n}")
    session.add(town)
    session.flush()
    return town


def make_village(session: Session, town: Town | None = None) -> Village:
    n = next(_seq)
    village = Village(town=town or make_town(session), code=f"V9{n:09d}", name=f"收款测试村{n}")
    session.add(village)
    session.flush()
    return village


def make_household(
    session: Session, village: Village, members: list[Member] | None = None
) -> Household:
    """A household of `members` (default: two adults and a child) in `village`."""
    return payments_factories.make_household(session, members or FAMILY, village=village)


def make_staff(
    session: Session, role: str, *, village: Village | None = None, town: Town | None = None
) -> StaffAccount:
    n = next(_seq)
    staff = StaffAccount(
        username=f"{role}-{n}",
        display_name=f"测试{role}{n}",
        password_hash="x",
        role=role,
        village_id=village.id if village else None,
        town_id=(town.id if town else village.town_id if village else None),
    )
    session.add(staff)
    session.flush()
    return staff


def staff_token(app: Any, staff: StaffAccount) -> dict[str, str]:
    token = issue_token(
        secret_key=app.config["SETTINGS"].SECRET_KEY, kind="staff", account_id=staff.id
    )
    return {"Authorization": f"Bearer {token}"}


def resident_headers(app: Any, session: Session, household: Household) -> dict[str, str]:
    """A resident bound to the household through its first member."""
    n = next(_seq)
    account = ResidentAccount(channel="wechat", external_id=f"ocollect{n:020d}")
    session.add(account)
    session.flush()
    session.add(
        HouseholdBinding(
            account_id=account.id, household_id=household.id, person_id=household.members[0].id
        )
    )
    session.flush()
    token = issue_token(
        secret_key=app.config["SETTINGS"].SECRET_KEY, kind="resident", account_id=account.id
    )
    return {"Authorization": f"Bearer {token}"}


def collect_body(household: Household, *, tier: int | None = 500) -> dict[str, Any]:
    """Medical for every member, pension (at `tier`) for the adults."""
    items = []
    for person in household.members:
        adult = person.birth_date.year < 2000
        entry: dict[str, Any] = {
            "person_id": person.id,
            "insurances": ["medical", "pension"] if adult and tier else ["medical"],
        }
        if adult and tier:
            entry["pension_tier"] = tier
        items.append(entry)
    return {"household_id": household.id, "year": 2020, "items": items}
