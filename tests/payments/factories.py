"""Factories for payments tests: a district corner, households with members, bound resident
accounts, and orders made directly in the database (for the notification paths)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from api.auth.models import HouseholdBinding, ResidentAccount
from api.auth.tokens import issue_token
from api.households.models import Enrollment, Household, Person, PersonCategory, Town, Village
from api.payments.channels import new_out_trade_no
from api.payments.models import OrderItem, OrderStatus, PaymentOrder

_seq = itertools.count(1)
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def id_number(birth: date, serial: int) -> str:
    """A GB 11643 ID number with a correct check character (area 370406, Shanting)."""
    body = f"370406{birth:%Y%m%d}{serial % 1000:03d}"
    total = sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True))
    return body + _CHECK[total % 11]


@dataclass
class Member:
    birth: date
    categories: tuple[str, ...] = ()
    pension_tier: int | None = None
    student: bool = False
    employee_medical: bool = False
    employee_pension: bool = False
    name: str = "王小明"


def make_household(
    session: Session, members: list[Member], *, year: int = 2020, village: Village | None = None
) -> Household:
    """A household of `members`, in `village` or in a town and village of its own."""
    n = next(_seq)
    if village is None:
        town = Town(code=f"T{n:08d}", name=f"测试镇{n}")
        village = Village(town=town, code=f"V{n:010d}", name=f"测试村{n}")
    household = Household(village=village, household_no=f"H{n:06d}")
    session.add_all([village, household])
    for i, m in enumerate(members):
        person = Person(
            household=household,
            id_number=id_number(m.birth, n * 10 + i),
            name=m.name,
            birth_date=m.birth,
            sex="1" if i % 2 == 0 else "2",
            student=m.student,
            employee_medical=m.employee_medical,
            employee_pension=m.employee_pension,
        )
        person.categories = [PersonCategory(category=c) for c in m.categories]
        if m.pension_tier is not None:
            person.enrollments = [
                Enrollment(insurance="pension", year=year, pension_tier=m.pension_tier)
            ]
        session.add(person)
    session.flush()
    return household


def make_account(
    session: Session, household: Household | None = None, *, channel: str = "wechat"
) -> ResidentAccount:
    n = next(_seq)
    external = f"o{n:027d}" if channel == "wechat" else f"2088{n:012d}"
    account = ResidentAccount(channel=channel, external_id=external)
    session.add(account)
    session.flush()
    if household is not None:
        bind(session, account, household)
    return account


def bind(session: Session, account: ResidentAccount, household: Household) -> None:
    session.add(
        HouseholdBinding(
            account_id=account.id, household_id=household.id, person_id=household.members[0].id
        )
    )
    session.flush()


def token_for(app: Any, account: ResidentAccount) -> str:
    return issue_token(
        secret_key=app.config["SETTINGS"].SECRET_KEY, kind="resident", account_id=account.id
    )


def make_order(
    session: Session,
    household: Household,
    *,
    channel: str = "wechat",
    status: str = OrderStatus.OPEN,
    items: list[tuple[Person, str, int]] | None = None,
    account: ResidentAccount | None = None,
    year: int = 2020,
) -> PaymentOrder:
    """An order straight in the database: items (person, insurance, amount_fen)."""
    chosen = items or [(p, "medical", 28000) for p in household.members]
    now = datetime.now(UTC)
    order = PaymentOrder(
        out_trade_no=new_out_trade_no(),
        channel=channel,
        scene="miniprogram",
        household_id=household.id,
        account_id=account.id if account else None,
        year=year,
        insurances=",".join(sorted({ins for _, ins, _ in chosen})),
        amount_fen=sum(a for _, _, a in chosen),
        description=f"{year}年城乡居民医疗保险费",
        status=status,
        late=False,
        priced_on="2019-11-05",
        expires_at=now + timedelta(minutes=30),
        payer_id=account.external_id if account else None,
        client_ip="127.0.0.1",
        refunded_fen=0,
        created_at=now,
        updated_at=now,
        items=[
            OrderItem(
                person_id=p.id,
                insurance=ins,
                year=year,
                amount_fen=amount,
                government_pays_fen=0,
                subsidy_fen=3000 if ins == "pension" else 0,
                pension_tier=amount // 100 if ins == "pension" else None,
                late=False,
                rule="standard",
            )
            for p, ins, amount in chosen
        ],
    )
    session.add(order)
    session.flush()
    return order
