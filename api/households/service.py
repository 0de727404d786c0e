"""Households seen by residents: binding 绑定, premiums 应缴保费 and pension tiers 缴费档次.

Rules come from `api.policy` (pure functions over the year's policy); this module loads the
persons, turns them into the rules' inputs, applies masking and stores choices. It flushes,
never commits: the routes commit (STYLE.md 4).

Binding (DESIGN.md, mini-program contract): a resident proves membership of a household by an
ID number and the exact name of a registered person. A wrong pair and an unknown ID number
get the same refusal (`BindRefused`), and the failure is recorded (`BindAttempt`) so repeated
guesses are throttled (`BindThrottled`, 429 + Retry-After; `api.throttle`): an account that
failed `max_failures` times in the window waits for the window; an address (village Wi-Fi and
carrier NAT put many residents on one) only slows, with growing pauses, the accounts that have
failed themselves, once it is past its much higher `address_free_failures` — a resident whose
own binds have not failed is never held up by what others did from the same address.
The refusal is returned, not raised, so the route can commit the attempt and its audit event
before answering.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, literal_column, select
from sqlalchemy.orm import Session, selectinload

from api.audit.service import record
from api.auth.models import BindAttempt, HouseholdBinding
from api.errors import Conflict, InvalidInput, NotFound, TooManyRequests
from api.households.models import Enrollment, Household, Person, PersonCategory, Town, Village
from api.households.quotes import (
    PolicyUnavailable,
    facts_of,
    policy_for_year,
    quote_people,
    tier_error,
    year_message,
)
from api.policy.idnumber import mask_id_number, mask_name
from api.policy.rules import PersonFacts, allowed_tiers
from api.throttle import growing_delay, seconds_until_allowed

log = logging.getLogger(__name__)

BIND_REFUSED_MESSAGE = "身份证号码与姓名不匹配，或该人员不在参保名册中，请核对后重试"


class BindRefused(NotFound):
    """The ID number and name do not identify a registered living person (same for all causes)."""

    code = "bind_failed"
    message = BIND_REFUSED_MESSAGE


class BindThrottled(TooManyRequests):
    """Too many failed binds from this account or address; `retry_after` in seconds."""

    message = "绑定失败次数过多，请稍后再试"


# Binding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BindSettings:
    max_failures: int
    window_seconds: int
    address_free_failures: int = 50
    delay_cap_seconds: int = 60


@dataclass
class BindOutcome:
    """Either `household` + `person` (bound) or `refusal` (to raise after committing)."""

    household: Household | None = None
    person: Person | None = None
    refusal: BindRefused | BindThrottled | None = None


def _retry_after(session: Session, condition: Any, *, settings: BindSettings, now: datetime) -> int:
    """Seconds until fewer than `max_failures` failures matching `condition` remain."""
    return seconds_until_allowed(
        session,
        BindAttempt.at,
        condition,
        allowed=settings.max_failures,
        window_seconds=settings.window_seconds,
        now=now,
    )


def _has_failed(
    session: Session, account_id: int, *, settings: BindSettings, now: datetime
) -> bool:
    since = now - timedelta(seconds=settings.window_seconds)
    return (
        session.scalar(
            select(BindAttempt.id)
            .where(BindAttempt.account_id == account_id, BindAttempt.at > since)
            .limit(1)
        )
        is not None
    )


def bind_household(
    session: Session,
    *,
    account_id: int,
    id_number: str,
    name: str,
    remote_addr: str,
    settings: BindSettings,
    now: datetime,
    today: date,
) -> BindOutcome:
    """Bind the account to the household of the person (ID number, name); see module doc.

    `id_number` must already be normalised (the schema does it); `name` is compared exactly
    after stripping surrounding spaces. A deceased person cannot be used to bind.
    """
    actor = f"resident:{account_id}"
    masked = {"id_number": mask_id_number(id_number), "name": mask_name(name.strip() or "?")}
    wait = _retry_after(session, BindAttempt.account_id == account_id, settings=settings, now=now)
    if wait == 0 and _has_failed(session, account_id, settings=settings, now=now):
        wait = growing_delay(
            session,
            BindAttempt.at,
            BindAttempt.remote_addr == remote_addr[:64],
            free=settings.address_free_failures,
            window_seconds=settings.window_seconds,
            now=now,
            cap_seconds=settings.delay_cap_seconds,
        )
    if wait > 0:
        record(
            session,
            actor=actor,
            action="household.bind",
            outcome="refused",
            detail={**masked, "reason": "throttled"},
            remote_addr=remote_addr,
        )
        session.flush()
        return BindOutcome(refusal=BindThrottled(retry_after=wait))

    person = session.scalars(select(Person).where(Person.id_number_is(id_number))).one_or_none()
    # Compare even when nobody matched, so both refusals do the same work.
    stored_name = person.name if person is not None else "\x00"
    name_ok = hmac.compare_digest(stored_name.encode(), name.strip().encode())
    reason = None
    if person is None:
        reason = "unknown"
    elif not name_ok:
        reason = "name_mismatch"
    elif person.deceased_on is not None and person.deceased_on <= today:
        reason = "deceased"
    if reason is not None or person is None:
        session.add(BindAttempt(account_id=account_id, remote_addr=remote_addr[:64], at=now))
        record(
            session,
            actor=actor,
            action="household.bind",
            outcome="refused",
            detail={**masked, "reason": reason},
            remote_addr=remote_addr,
        )
        session.flush()
        log.info("bind refused: account=%s reason=%s", account_id, reason)
        return BindOutcome(refusal=BindRefused())

    existing = session.scalars(
        select(HouseholdBinding).where(
            HouseholdBinding.account_id == account_id,
            HouseholdBinding.household_id == person.household_id,
        )
    ).one_or_none()
    if existing is None:
        session.add(
            HouseholdBinding(
                account_id=account_id, household_id=person.household_id, person_id=person.id
            )
        )
    else:
        existing.person_id = person.id  # the latest proof decides whose record is unmasked
    record(
        session,
        actor=actor,
        action="household.bind",
        subject=f"household:{person.household_id}",
        detail={**masked, "new": existing is None},
        remote_addr=remote_addr,
    )
    session.flush()
    household = load_household(session, person.household_id)
    return BindOutcome(household=household, person=person)


def load_household(session: Session, household_id: int) -> Household:
    """The household with village, town, members, categories and enrollments in 4 queries."""
    household = session.scalars(
        select(Household)
        .where(Household.id == household_id)
        .options(
            selectinload(Household.village).selectinload(Village.town),
            selectinload(Household.members).selectinload(Person.categories),
            selectinload(Household.members).selectinload(Person.enrollments),
        )
    ).one_or_none()
    if household is None:
        raise NotFound()
    return household


def death_dates(session: Session, *, person_ids: Sequence[int]) -> dict[int, date | None]:
    """Each person's recorded date of death (公安 death information), None when alive.

    For the payments package: a finance refund for reason `deceased` needs one.
    """
    rows = session.execute(
        select(Person.id, Person.deceased_on).where(Person.id.in_(list(person_ids)))
    ).all()
    return {person_id: died for person_id, died in rows}


def person_household_id(session: Session, *, person_id: int) -> int | None:
    """The household of a registered person, or None when no such person exists."""
    return session.scalar(select(Person.household_id).where(Person.id == person_id))


def bound_person_id(session: Session, *, account_id: int, household_id: int) -> int:
    """The person through whom the account is bound to the household.

    Raises 404 (not 403) when the account is not bound: a resident cannot learn whether a
    household id exists (the ids are sequential and would be enumerable).
    """
    person_id = session.scalar(
        select(HouseholdBinding.person_id).where(
            HouseholdBinding.account_id == account_id,
            HouseholdBinding.household_id == household_id,
        )
    )
    if person_id is None:
        raise NotFound("未找到该家庭，或您尚未绑定该家庭")
    return int(person_id)


def household_view(household: Household, *, viewer_person_id: int | None) -> dict[str, Any]:
    """The household as a resident sees it: other members masked, their own record in full."""
    village = household.village
    return {
        "id": household.id,
        "household_no": household.household_no,
        "village": {"code": village.code, "name": village.name},
        "town": {"code": village.town.code, "name": village.town.name},
        "members": [
            member_identity(p, viewer_person_id=viewer_person_id) for p in household.members
        ],
    }


def member_identity(person: Person | MemberRow, *, viewer_person_id: int | None) -> dict[str, Any]:
    is_self = person.id == viewer_person_id
    return {
        "person_id": person.id,
        "name": person.name if is_self else mask_name(person.name),
        "id_number": person.id_number if is_self else mask_id_number(person.id_number),
        "is_self": is_self,
        # Beside the masked name: two members masked alike (刘*, 刘*) are told apart.
        "birth_year": person.birth_date.year,
        "deceased": person.deceased_on is not None,
    }


# Premiums ------------------------------------------------------------------------------------


def paid_items(session: Session, *, household_id: int, year: int) -> set[tuple[int, str]]:
    """HOOK for the payments package: the (person_id, insurance) pairs already paid for `year`.

    Returns every item of the household's members that has a confirmed `Contribution` (缴费记录)
    for the year, whatever its source (wechat, alipay, agent cash, counter, government 代缴
    batch), and not reversed by a refund. Insurance is "medical" or "pension".

    Answered by `api.payments.service.paid_keys` (payments owns contributions). The tier
    endpoint (which refuses to change a paid pension tier) calls it; the premiums page reads
    the same rule inside its one statement (`paid_exists`, see `bound_member_rows`).
    """
    from api.payments.service import paid_keys  # payments owns contributions

    return paid_keys(session, household_id=household_id, year=year)


def item_status(*, due: bool, owed_fen: int, government_fen: int, paid: bool) -> str:
    """`paid` | `government` (代缴 covers it, nothing to pay) | `not_due` | `unpaid`."""
    if paid:
        return "paid"
    if not due:
        return "not_due"
    if owed_fen == 0 and government_fen > 0:
        return "government"
    if owed_fen == 0:
        return "not_due"
    return "unpaid"


@dataclass(frozen=True)
class MemberRow:
    """What the premiums page needs of a person, read without the ORM (the hot read path)."""

    id: int
    id_number: str
    name: str
    birth_date: date
    student: bool
    employee_pension: bool
    employee_medical: bool
    residence_permit: bool
    deceased_on: date | None
    pension_tier: int | None
    categories: frozenset[str]
    medical_paid: bool = False
    pension_paid: bool = False
    medical_source: str | None = None  # how it was paid: wechat, alipay, agent, …
    pension_source: str | None = None

    def facts(self) -> PersonFacts:
        return PersonFacts(
            birth_date=self.birth_date,
            categories=self.categories,
            student=self.student,
            employee_pension=self.employee_pension,
            employee_medical=self.employee_medical,
            deceased_on=self.deceased_on,
            residence_permit=self.residence_permit,
            pension_tier=self.pension_tier,
        )


_persons = Person.__table__
_categories = PersonCategory.__table__
_enrollments = Enrollment.__table__
_bindings = HouseholdBinding.__table__


def _members_of_bound_household() -> Any:
    """The premiums page's one statement, built on first use and kept (module attribute).

    Constructing a statement costs more than executing it on SQLite (bench/http_throughput.py),
    so it is built once. One round trip, one snapshot, one row per member: the account's
    binding (no row → not bound → 404), the members, their pension tier for the year, whether
    each insurance is paid for the year (payments' rule, `api.payments.service.paid_exists`)
    and their categories (comma-joined). Built lazily because payments imports a long chain
    (orders, channels) that must not load with this module.

    Tier, paid flags and categories are correlated subqueries keyed by the member's id, not
    joins: each is an index lookup per member whatever the statistics say. As outer joins, a
    generic plan without statistics hash-joined every enrollment and category of the district
    (tests/perf/test_request_plans.py).
    """
    global _MEMBERS_OF_BOUND_HOUSEHOLD
    if _MEMBERS_OF_BOUND_HOUSEHOLD is None:
        from api.payments.service import paid_exists  # payments owns contributions

        year: Any = bindparam("year")
        tier = (
            select(_enrollments.c.pension_tier)
            .where(
                _enrollments.c.person_id == _persons.c.id,
                _enrollments.c.insurance == literal_column("'pension'"),
                _enrollments.c.year == year,
            )
            .scalar_subquery()
        )
        categories = (
            select(func.aggregate_strings(_categories.c.category, ","))
            .where(_categories.c.person_id == _persons.c.id)
            .scalar_subquery()
        )
        _MEMBERS_OF_BOUND_HOUSEHOLD = (
            select(
                _bindings.c.person_id.label("viewer_person_id"),
                _persons.c.id,
                _persons.c.id_number,
                _persons.c.name,
                _persons.c.birth_date,
                _persons.c.student,
                _persons.c.employee_pension,
                _persons.c.employee_medical,
                _persons.c.residence_permit,
                _persons.c.deceased_on,
                tier.label("pension_tier"),
                paid_exists(_persons.c.id, insurance="medical", year=year).label("medical_paid"),
                paid_exists(_persons.c.id, insurance="pension", year=year).label("pension_paid"),
                categories.label("categories"),
            )
            .select_from(
                _bindings.join(_persons, _persons.c.household_id == _bindings.c.household_id)
            )
            .where(
                _bindings.c.account_id == bindparam("account_id"),
                _bindings.c.household_id == bindparam("household_id"),
            )
            .order_by(_persons.c.id)
        )
    return _MEMBERS_OF_BOUND_HOUSEHOLD


_MEMBERS_OF_BOUND_HOUSEHOLD: Any = None


def bound_member_rows(
    session: Session, *, account_id: int, household_id: int, year: int
) -> tuple[int, list[MemberRow]]:
    """(the viewer's person id, the members with their paid items) of a household the account
    is bound to.

    Core, not ORM, in one statement: this is the hot read path (every premiums request).
    Raises 404 when the account is not bound to the household (see `bound_person_id`).
    """
    rows = (
        session.connection()
        .execute(
            _members_of_bound_household(),
            {"account_id": account_id, "household_id": household_id, "year": year},
        )
        .all()
    )
    if not rows:
        raise NotFound("未找到该家庭，或您尚未绑定该家庭")
    members = [
        MemberRow(
            id=pid,
            id_number=id_number,
            name=name,
            birth_date=birth,
            student=student,
            employee_pension=e_pension,
            employee_medical=e_medical,
            residence_permit=permit,
            deceased_on=died,
            pension_tier=tier,
            categories=frozenset(categories.split(",")) if categories else frozenset(),
            medical_paid=medical_paid is not None,
            pension_paid=pension_paid is not None,
            medical_source=medical_paid,
            pension_source=pension_paid,
        )
        for (
            _viewer,
            pid,
            id_number,
            name,
            birth,
            student,
            e_pension,
            e_medical,
            permit,
            died,
            tier,
            medical_paid,
            pension_paid,
            categories,
        ) in rows
    ]
    return int(rows[0][0]), members


def household_premiums(
    session: Session,
    *,
    account_id: int,
    household_id: int,
    year: int,
    today: date,
) -> dict[str, Any]:
    """What each member of a household the account is bound to owes for `year` on `today`,
    with payment status; 404 when the account is not bound to that household."""
    policy = _policy(year)
    viewer_person_id, people = bound_member_rows(
        session, account_id=account_id, household_id=household_id, year=year
    )
    # Paid items come with the members (same statement, same snapshot): see `paid_items`.
    paid = {(p.id, "medical") for p in people if p.medical_paid} | {
        (p.id, "pension") for p in people if p.pension_paid
    }
    sources = {(p.id, "medical"): p.medical_source for p in people if p.medical_source} | {
        (p.id, "pension"): p.pension_source for p in people if p.pension_source
    }
    quote = quote_people(policy, [p.facts() for p in people], on=today)
    members = [
        _member_body(person, line, paid, viewer_person_id, sources)
        for person, line in zip(people, quote.members, strict=True)
    ]
    unpaid = sum(
        m[insurance]["owed_fen"]
        for m in members
        for insurance in ("medical", "pension")
        if m[insurance]["status"] == "unpaid"
    )
    backpays = _backpay_items(session, [p.id for p in people], today)
    return {
        "household_id": household_id,
        "year": year,
        "as_of": today,
        "late": quote.late,
        "collection_open": quote.collection_open,
        "members": members,
        "totals": {
            **quote.totals,
            "unpaid_fen": unpaid,
            "backpay_unpaid_fen": sum(b["amount_fen"] for b in backpays),
        },
        "backpay": backpays,
    }


def _backpay_items(session: Session, person_ids: list[int], today: date) -> list[dict[str, Any]]:
    """The members' approved, unpaid, unexpired back-payments (补缴), payable online with
    "backpay" among an order's insurances. Kept out of `unpaid_fen` (the year's premiums)."""
    from api.backpay import service as backpay  # backpay uses this module's services

    return [
        {
            "approval_id": b.approval_id,
            "person_id": b.person_id,
            "insurance": b.insurance,
            "year": b.year,
            "amount_fen": b.amount_fen,
            "pension_tier": b.pension_tier,
            "document_no": b.document_no,
            "expires_on": b.expires_on.isoformat(),
            "status": "unpaid",
        }
        for b in backpay.payable(session, person_ids=person_ids, on=today)
    ]


def _member_body(
    person: Person | MemberRow,
    line: dict[str, Any],
    paid: set[tuple[int, str]],
    viewer_person_id: int,
    sources: dict[tuple[int, str], str] | None = None,
) -> dict[str, Any]:
    medical = dict(line["medical"])
    pension = dict(line["pension"])
    medical["status"] = item_status(
        due=medical["due"],
        owed_fen=medical["owed_fen"],
        government_fen=medical["government_pays_fen"],
        paid=(person.id, "medical") in paid,
    )
    pension_paid = (person.id, "pension") in paid
    if pension["eligible"] and pension["tier"] is None and not pension_paid:
        pension["status"] = "tier_required"
    else:
        pension["status"] = item_status(
            due=pension["eligible"],
            owed_fen=pension["owed_fen"],
            government_fen=pension["government_pays_fen"],
            paid=pension_paid,
        )
    for insurance, item in (("medical", medical), ("pension", pension)):
        source = (sources or {}).get((person.id, insurance))
        if item["status"] == "paid" and source:
            item["paid_source"] = source  # agent: collected in cash by the village agent
    return {
        **member_identity(person, viewer_person_id=viewer_person_id),
        "age": line["age"],
        "medical": medical,
        "pension": pension,
    }


def _policy(year: int) -> Any:
    try:
        return policy_for_year(year)
    except PolicyUnavailable as exc:
        raise InvalidInput(errors={"query": {"year": [year_message(year)]}}) from exc


def choose_pension_tier(
    session: Session,
    *,
    household_id: int,
    person_id: int,
    year: int,
    tier: int,
    viewer_person_id: int,
    actor: str,
    today: date,
) -> dict[str, Any]:
    """Store the pension tier a household member chose for `year`; return their new quote.

    Any member bound to the household may choose for every member: the family pays together
    (DOMAIN.md: the household is the unit). The tier is checked with the policy's tier rules
    (tier 100 only for its categories; persons not eligible for pension are refused), and a
    pension already paid for the year cannot change tier.
    """
    policy = _year_policy_for_body(year)
    household = load_household(session, household_id)
    person = next((p for p in household.members if p.id == person_id), None)
    if person is None:
        raise NotFound("该家庭中没有此成员")
    problem = tier_error(policy, facts_of(person, year), tier, on=today)
    if problem is not None:
        raise InvalidInput(errors={"json": {"tier": [problem]}})
    # Read once: choosing a tier changes no contribution, so the answer below reuses it.
    paid = paid_items(session, household_id=household_id, year=year)
    if (person.id, "pension") in paid:
        raise Conflict("该成员本年度养老保险已缴费，不能再更改档次", code="already_paid")
    enrollment = next(
        (e for e in person.enrollments if e.insurance == "pension" and e.year == year), None
    )
    previous = enrollment.pension_tier if enrollment else None
    if enrollment is None:
        enrollment = Enrollment(person_id=person.id, insurance="pension", year=year)
        person.enrollments.append(enrollment)
    enrollment.pension_tier = tier
    record(
        session,
        actor=actor,
        action="pension.tier",
        subject=f"person:{person.id}",
        detail={
            "household_id": household_id,
            "year": year,
            "from": previous,
            "to": tier,
            "id_number": mask_id_number(person.id_number),
        },
    )
    session.flush()
    quote = quote_people(policy, [facts_of(person, year)], on=today)
    return _member_body(person, quote.members[0], paid, viewer_person_id)


def _year_policy_for_body(year: int) -> Any:
    try:
        return policy_for_year(year)
    except PolicyUnavailable as exc:
        raise InvalidInput(errors={"json": {"year": [year_message(year)]}}) from exc


def bound_households(session: Session, *, account_id: int) -> list[dict[str, Any]]:
    """Every household the account is bound to, as `household_view`s (oldest binding first)."""
    bindings = session.execute(
        select(HouseholdBinding.household_id, HouseholdBinding.person_id)
        .where(HouseholdBinding.account_id == account_id)
        .order_by(HouseholdBinding.id)
    ).all()
    return [
        household_view(load_household(session, household_id), viewer_person_id=person_id)
        for household_id, person_id in bindings
    ]


# The district's units for the oversight views (api.oversight) ---------------------------------


@dataclass(frozen=True)
class Unit:
    """A town 镇(街) or a village 村居 as the progress view lists it (no persons in it)."""

    id: int
    code: str
    name: str
    town_id: int | None  # the village's town; None for a town


def district_units(session: Session) -> tuple[list[Unit], list[Unit]]:
    """(towns, villages), each in code order."""
    towns = [
        Unit(t.id, t.code, t.name, None) for t in session.scalars(select(Town).order_by(Town.code))
    ]
    villages = [
        Unit(v.id, v.code, v.name, v.town_id)
        for v in session.scalars(select(Village).order_by(Village.code))
    ]
    return towns, villages


# Staff views (a village agent's collection, api/collection) ------------------------------------


def village_household_id(session: Session, *, village_id: int, household_no: str) -> int | None:
    """The household numbered `household_no` in the village, or None."""
    return session.scalar(
        select(Household.id).where(
            Household.village_id == village_id, Household.household_no == household_no
        )
    )


def household_place(session: Session, *, household_id: int) -> dict[str, Any] | None:
    """Where a household is: its number, village and town (ids, codes, names); None if none."""
    row = session.execute(
        select(
            Household.household_no,
            Village.id,
            Village.code,
            Village.name,
            Village.town_id,
        ).where(Household.id == household_id, Village.id == Household.village_id)
    ).one_or_none()
    if row is None:
        return None
    household_no, village_id, code, name, town_id = row
    town = session.get(Town, town_id)
    assert town is not None
    return {
        "household_id": household_id,
        "household_no": household_no,
        "village": {"id": village_id, "code": code, "name": name},
        "town": {"id": town.id, "code": town.code, "name": town.name},
    }


def masked_people(session: Session, *, person_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Persons as staff see them: name and ID number masked (no staff member owns them)."""
    people = session.scalars(select(Person).where(Person.id.in_(list(person_ids)))).all()
    return {p.id: member_identity(p, viewer_person_id=None) for p in people}


def household_premiums_for_staff(
    session: Session, *, household_id: int, year: int, today: date
) -> dict[str, Any]:
    """What each member owes for `year` on `today` with payment status and source — the
    premiums page's structure (same rules, same quote), every member masked — plus, per
    member, the pension tiers the policy lets them choose (`allowed_tiers`)."""
    policy = _policy(year)
    household = load_household(session, household_id)
    from api.payments.service import paid_items as payments_paid_items  # payments owns them

    sources = {
        (p.person_id, p.insurance): p.source
        for p in payments_paid_items(session, household_id=household_id, year=year)
    }
    paid = set(sources)
    people = list(household.members)
    facts = [facts_of(p, year) for p in people]
    quote = quote_people(policy, facts, on=today)
    members = []
    for person, fact, line in zip(people, facts, quote.members, strict=True):
        body = _member_body(person, line, paid, 0, sources)
        body["pension"]["allowed_tiers"] = (
            list(allowed_tiers(policy, fact.categories & policy.category_keys))
            if body["pension"]["eligible"]
            else []
        )
        members.append(body)
    unpaid = sum(
        m[insurance]["owed_fen"]
        for m in members
        for insurance in ("medical", "pension")
        if m[insurance]["status"] == "unpaid"
    )
    return {
        "household_id": household_id,
        "household_no": household.household_no,
        "village": {"code": household.village.code, "name": household.village.name},
        "town": {"code": household.village.town.code, "name": household.village.town.name},
        "year": year,
        "as_of": today,
        "late": quote.late,
        "collection_open": quote.collection_open,
        "members": members,
        "totals": {**quote.totals, "unpaid_fen": unpaid},
    }


def town_villages(session: Session, *, town: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A town (by name or code) and its villages' codes and names, ordered by code; raises
    NotFound for an unknown town."""
    row = session.scalars(select(Town).where((Town.name == town) | (Town.code == town))).first()
    if row is None:
        raise NotFound(f"未找到镇(街) {town}")
    villages = session.execute(
        select(Village.code, Village.name).where(Village.town_id == row.id).order_by(Village.code)
    ).all()
    return {"code": row.code, "name": row.name}, [{"code": c, "name": n} for c, n in villages]
