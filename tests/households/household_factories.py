"""Factories for the district's models, reusable by every test package.

    from tests.households.household_factories import make_household, member

    household = make_household(session, members=[
        member("王小明", age=40),
        member("李四", birth="1955-03-02", categories=["dibao"]),
    ])

Every person gets a valid 18-character resident ID number (GB 11643 check character) built
from its birth date and sex, unique within the run, unless the test passes its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from api.households.models import Household, Person, PersonCategory, Town, Village
from api.policy.idnumber import make_id_number

REGION = "370406"  # 枣庄市山亭区
_seq = itertools.count(1)
AGE_REFERENCE = date(2020, 1, 1)


def id_number(birth: date, *, sex: str = "M", seq: int | None = None, region: str = REGION) -> str:
    """A valid ID number, unique within the run; the 17th digit is odd for men."""
    n = next(_seq) if seq is None else seq
    order = ((n % 500) * 2 + (1 if sex == "M" else 0)) % 1000
    return make_id_number(region, birth, order)


def birth_for_age(age: int, *, on: date = AGE_REFERENCE, month: int = 6, day: int = 15) -> date:
    """A birth date giving `age` whole years on `on` (born mid-year, before `on` by default)."""
    born = date(on.year - age, month, day)
    if (born.month, born.day) <= (on.month, on.day):
        return born
    return date(on.year - age - 1, month, day)


@dataclass
class MemberSpec:
    name: str
    birth: date
    sex: str = "M"
    categories: list[str] = field(default_factory=list)
    student: bool = False
    employee_pension: bool = False
    employee_medical: bool = False
    residence_permit: bool = False
    deceased_on: date | None = None
    id_number: str | None = None


def member(
    name: str,
    *,
    age: int | None = None,
    birth: date | str | None = None,
    **kwargs: Any,
) -> MemberSpec:
    """A member by age on 2020-01-01 (the 2020 age reference date) or by birth date."""
    if isinstance(birth, str):
        birth = date.fromisoformat(birth)
    if birth is None:
        birth = birth_for_age(40 if age is None else age)
    return MemberSpec(name=name, birth=birth, **kwargs)


def make_town(session: Session, *, name: str | None = None, code: str | None = None) -> Town:
    n = next(_seq)
    town = Town(code=code or f"T{n:08d}", name=name or f"测试镇{n}")
    session.add(town)
    session.flush()
    return town


def make_village(
    session: Session,
    *,
    town: Town | None = None,
    name: str | None = None,
    code: str | None = None,
) -> Village:
    n = next(_seq)
    village = Village(
        town=town or make_town(session), code=code or f"V{n:010d}", name=name or f"测试村{n}"
    )
    session.add(village)
    session.flush()
    return village


def make_person(session: Session, household: Household, spec: MemberSpec) -> Person:
    person = Person(
        household_id=household.id,
        id_number=spec.id_number or id_number(spec.birth, sex=spec.sex),
        name=spec.name,
        birth_date=spec.birth,
        sex=spec.sex,
        student=spec.student,
        employee_pension=spec.employee_pension,
        employee_medical=spec.employee_medical,
        residence_permit=spec.residence_permit,
        deceased_on=spec.deceased_on,
    )
    person.categories = [PersonCategory(category=c, source="test") for c in spec.categories]
    session.add(person)
    return person


def make_household(
    session: Session,
    *,
    members: list[MemberSpec] | None = None,
    village: Village | None = None,
    household_no: str | None = None,
) -> Household:
    """A household with its persons (default: one 40-year-old), flushed, ids assigned."""
    household = Household(
        village=village or make_village(session), household_no=household_no or f"H{next(_seq):07d}"
    )
    session.add(household)
    session.flush()
    for spec in members if members is not None else [member("王小明", age=40)]:
        make_person(session, household, spec)
    session.flush()
    session.refresh(household)
    return household


def make_resident(
    session: Session, *, channel: str = "wechat", external_id: str | None = None
) -> Any:
    """A resident account (as after a mini-program login), flushed."""
    from api.auth.models import ResidentAccount

    account = ResidentAccount(channel=channel, external_id=external_id or f"openid-{next(_seq)}")
    session.add(account)
    session.flush()
    return account


def bearer(app: Any, account_id: int, *, kind: str = "resident") -> dict[str, str]:
    """`Authorization` header for an account of `kind` (resident or staff) of `app`."""
    from api.auth.tokens import issue_token

    token = issue_token(
        secret_key=app.config["SETTINGS"].SECRET_KEY,
        kind=kind,  # type: ignore[arg-type]
        account_id=account_id,
    )
    return {"Authorization": f"Bearer {token}"}


def bind(session: Session, account_id: int, person: Person) -> None:
    """Bind `account_id` to `person`'s household directly (skipping the bind endpoint)."""
    from api.auth.models import HouseholdBinding

    session.add(
        HouseholdBinding(
            account_id=account_id, household_id=person.household_id, person_id=person.id
        )
    )
    session.flush()
