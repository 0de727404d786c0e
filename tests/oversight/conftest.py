"""A small district, hand-computed (tests/oversight/test_progress.py's docstring has the sums).

Town A 西集镇 (370406101): villages A1 (p1, p2, p3) and A2 (p4); town B 城头镇 (370406102):
village B1 (p5, p6). Contributions of 2020 (Beijing days):
- p1 medical wechat 10-27 and pension wechat 300 yuan 10-27 (p1 paid pension for 2019: not new)
- p2 medical alipay, paid 2019-10-31 16:30 UTC = 11-01 00:30 Beijing
- p3 medical and pension (tier 100) by the government 11-22
- p4 medical wechat 10-28 REFUNDED (reversed), then medical alipay 11-27
- p5 medical agent 11-05, pension counter 500 yuan 11-05
- p6 medical wechat 11-30 (after the as-of day 11-28 of the tests)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask

from api.auth.models import StaffAccount
from api.auth.tokens import issue_token
from api.households.models import Town
from api.payments.models import Contribution
from tests.households.household_factories import make_household, make_village, member

AS_OF = date(2019, 11, 28)


@dataclass
class District:
    town_a: Town
    town_b: Town
    headers: dict[str, dict[str, str]]
    staff_ids: dict[str, int]


def _staff(app: Flask, session: Any, role: str, name: str, **scope: Any) -> tuple[int, dict]:
    staff = StaffAccount(username=name, display_name=name, password_hash="x", role=role, **scope)
    session.add(staff)
    session.flush()
    token = issue_token(
        secret_key=app.config["SETTINGS"].SECRET_KEY, kind="staff", account_id=staff.id
    )
    return staff.id, {"Authorization": f"Bearer {token}"}


def _paid(
    session: Any,
    person: Any,
    insurance: str,
    source: str,
    at: datetime,
    *,
    amount: int = 26000,
    government: int = 0,
    tier: int | None = None,
    year: int = 2020,
    status: str = "paid",
) -> None:
    session.add(
        Contribution(
            person_id=person.id, household_id=person.household_id, insurance=insurance,
            year=year, amount_fen=amount, government_pays_fen=government, subsidy_fen=0,
            pension_tier=tier, source=source, paid_at=at, late=False,
            benefit_start=date(year, 1, 1), status=status, kind="premium",
            reversed_at=at if status == "reversed" else None,
        )
    )  # fmt: skip


def utc(y: int, m: int, d: int, h: int = 2, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


@pytest.fixture
def district(app: Flask, session: Any) -> District:
    town_a = Town(code="370406101", name="西集镇")
    town_b = Town(code="370406102", name="城头镇")
    session.add_all([town_a, town_b])
    session.flush()
    a1 = make_village(session, town=town_a, code="370406101201", name="东庄村")
    a2 = make_village(session, town=town_a, code="370406101202", name='=HYPERLINK("x")村')
    b1 = make_village(session, town=town_b, code="370406102201", name="西岭村")
    h1 = make_household(
        session, village=a1,
        members=[member("王一", age=50), member("王二", age=48), member("王三", age=46)],
    )  # fmt: skip
    h2 = make_household(session, village=a2, members=[member("李四", age=40)])
    h3 = make_household(
        session, village=b1, members=[member("张五", age=55), member("张六", age=20)]
    )
    p1, p2, p3 = h1.members
    (p4,) = h2.members
    p5, p6 = h3.members
    _paid(session, p1, "pension", "wechat", utc(2018, 11, 1), amount=30000, tier=300, year=2019)
    _paid(session, p1, "medical", "wechat", utc(2019, 10, 27))
    _paid(session, p1, "pension", "wechat", utc(2019, 10, 27), amount=30000, tier=300)
    _paid(session, p2, "medical", "alipay", utc(2019, 10, 31, 16, 30))
    _paid(session, p3, "medical", "government", utc(2019, 11, 22), amount=0, government=26000)
    _paid(session, p3, "pension", "government", utc(2019, 11, 22), amount=0, government=10000,
          tier=100)  # fmt: skip
    _paid(session, p4, "medical", "wechat", utc(2019, 10, 28), status="reversed")
    _paid(session, p4, "medical", "alipay", utc(2019, 11, 27))
    _paid(session, p5, "medical", "agent", utc(2019, 11, 5))
    _paid(session, p5, "pension", "counter", utc(2019, 11, 5), amount=50000, tier=500)
    _paid(session, p6, "medical", "wechat", utc(2019, 11, 30))
    session.flush()
    headers, ids = {}, {}
    for role, scope in (
        ("finance", {}),
        ("auditor", {}),
        ("town", {"town_id": town_a.id}),
        ("agent", {"village_id": a1.id}),
    ):
        ids[role], headers[role] = _staff(app, session, role, f"{role}-user", **scope)
    session.commit()
    return District(town_a, town_b, headers, ids)
