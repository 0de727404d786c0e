"""Agent collection 代办员收款: receipts issued for a household's cash (docs/collection.md).

Rules this module enforces (DOMAIN.md "The process, as data moves", step 4; 工作要求):
- **Scope**: an agent acts on its own village only; a town office reads its villages'
  receipts. Anything outside the scope is 404 (its existence is not revealed).
- **No amount from the agent**: the request names persons, insurances and (pension) tiers;
  every amount is the policy's, priced by `api.payments.cash.collectable_dues` — the function
  online orders use — so 超标准/搭车收费 cannot be recorded. A tier goes through the premiums
  page's own tier choice (`api.households.service.choose_pension_tier`: the policy's tiers,
  100 only for its groups, stored as the person's choice for the year).
- **Medical is per household** (以家庭为单位全员参加): medical on a receipt covers every member
  who owes it, or none, as an online order does.
- **Paid means paid**: a premium already paid (online, another receipt, a 代缴 batch) is
  refused (409 `already_paid`); one paid at the same moment loses on the contributions'
  unique index (`cash.book_agent_cash`), so a premium is counted once whoever wins.
- **Numbering**: per village per insurance year, `<village code>-<year>-<seq:06d>`, from a
  counter row incremented in the receipt's own transaction (PostgreSQL: the UPDATE holds the
  row lock until commit, so concurrent agents of one village queue; SQLite: one writer). A
  collection that fails rolls its increment back with it: no gap, no reuse. A voided receipt
  keeps its number and says why.
- **Idempotency-Key**: per agent; the same key and body give the same receipt, another body
  409 `idempotency_conflict`. Only issued receipts are remembered: a refused request leaves
  nothing, so repeating it is asked afresh.

The contributions are booked without a tax record (`api.payments.cash`): the tax office's
confirmation of the town's declaration will enqueue them (not built yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from api.audit.service import record as audit
from api.auth.guards import visible_village_ids
from api.auth.models import StaffAccount
from api.auth.service import staff_names
from api.collection.models import Receipt, ReceiptCounter, ReceiptLine, ReceiptStatus
from api.db import Database
from api.documents.capitals import fen_in_capitals
from api.errors import Conflict, DomainError, InvalidInput, NotFound
from api.extensions.cursor import keyset, page
from api.households import service as households
from api.payments import cash
from api.payments.service import paid_keys

TITLE = "山亭区居民社会保险基金专用收据"
INSURANCE_NAMES = {"medical": "居民医疗保险", "pension": "居民养老保险"}


class HouseholdNotFound(NotFound):
    """No such household in the agent's village (or no such household at all)."""

    code = "household_not_found"
    message = "本村居没有该户，请核对户号"


class ReceiptNotFound(NotFound):
    """No such receipt among those the caller may see."""

    code = "receipt_not_found"
    message = "未找到该收据，或该收据不属于您管辖的村居"


class ReceiptVoided(Conflict):
    """The receipt is already voided."""

    code = "receipt_voided"
    message = "该收据已作废"


class CollectionClosed(Conflict):
    """Outside the year's collection phases."""

    code = "collection_closed"
    message = "当前不在缴费期内，不能收款"


class NothingOwed(InvalidInput):
    """A chosen person × insurance owes nothing the agent could collect."""

    code = "nothing_owed"
    message = "所选人员没有需要代收的该项保费"


class MedicalHouseholdUnit(InvalidInput):
    """Medical chosen for some, not all, of the members who owe it."""

    code = "medical_household_unit"
    message = "居民医疗保险以家庭为单位参保，须为全家应缴成员一并收取"


class IdempotencyConflict(Conflict):
    """The agent's Idempotency-Key was used for another request."""

    code = "idempotency_conflict"
    message = "该 Idempotency-Key 已用于另一笔不同的收款"


@dataclass(frozen=True)
class Choice:
    """What the agent chose for one person: insurances and, for pension, a tier (yuan)."""

    person_id: int
    insurances: tuple[str, ...]
    pension_tier: int | None = None


def receipt_number(village_code: str, year: int, seq: int) -> str:
    return f"{village_code}-{year}-{seq:06d}"


# Reading -----------------------------------------------------------------------------------------


def collectable(
    session: Session, *, staff: StaffAccount, household_no: str, year: int, today: date
) -> dict[str, Any]:
    """A household of the agent's village as the premiums page shows it (masked), with each
    member's choosable tiers: what the agent may collect, priced on `today`."""
    household_id = households.village_household_id(
        session, village_id=_agent_village(staff), household_no=household_no
    )
    if household_id is None:
        raise HouseholdNotFound()
    return households.household_premiums_for_staff(
        session, household_id=household_id, year=year, today=today
    )


def _agent_village(staff: StaffAccount) -> int:
    if staff.role != "agent" or staff.village_id is None:
        raise HouseholdNotFound()
    return staff.village_id


def _visible(session: Session, staff: StaffAccount) -> set[int]:
    """The villages whose receipts the caller may read (agent: its own; town: its villages)."""
    villages = visible_village_ids(session, staff)
    return villages if villages is not None else set()


def find_receipt(
    session: Session, *, staff: StaffAccount, receipt_no: str, lock: bool = False
) -> Receipt:
    query = (
        select(Receipt).where(Receipt.receipt_no == receipt_no).options(selectinload(Receipt.lines))
    )
    if lock:
        query = query.with_for_update()
    receipt = session.scalars(query).one_or_none()
    if receipt is None or receipt.village_id not in _visible(session, staff):
        raise ReceiptNotFound()
    return receipt


def list_receipts(
    session: Session,
    *,
    staff: StaffAccount,
    year: int | None,
    status: str | None,
    village_code: str | None,
    household_no: str | None,
    page_args: dict[str, Any],
) -> tuple[list[dict[str, Any]], str | None]:
    """The caller's villages' receipts, newest first by default (cursor pages), without lines."""
    villages = sorted(_visible(session, staff))
    query = select(Receipt).where(Receipt.village_id.in_(villages))
    if year is not None:
        query = query.where(Receipt.year == year)
    if status is not None:
        query = query.where(Receipt.status == status)
    if village_code is not None:
        query = query.where(Receipt.receipt_no.startswith(f"{village_code}-", autoescape=True))
    if household_no is not None:
        ids = [
            households.village_household_id(session, village_id=v, household_no=household_no)
            for v in villages
        ]
        query = query.where(Receipt.household_id.in_([i for i in ids if i is not None]))
    rows = session.scalars(keyset(query, Receipt.id, page_args)).all()
    shown, next_cursor = page(rows, page_args, id_of=lambda r: r.id)
    return [receipt_view(session, r, lines=False) for r in shown], next_cursor


def receipt_view(session: Session, receipt: Receipt, *, lines: bool = True) -> dict[str, Any]:
    """A receipt as staff read it: persons masked, amount in figures and capitals."""
    place = households.household_place(session, household_id=receipt.household_id) or {}
    names = staff_names(
        session, staff_ids=[i for i in (receipt.agent_id, receipt.voided_by) if i is not None]
    )
    view: dict[str, Any] = {
        "receipt_no": receipt.receipt_no,
        "title": TITLE,
        "year": receipt.year,
        "status": receipt.status,
        "household_id": receipt.household_id,
        "household_no": place.get("household_no"),
        "village": _code_name(place.get("village")),
        "town": _code_name(place.get("town")),
        "amount_fen": receipt.amount_fen,
        "amount_in_capitals": fen_in_capitals(receipt.amount_fen),
        "issued_on": receipt.issued_on,
        "issued_at": receipt.issued_at,
        "agent": names.get(receipt.agent_id),
        "void_reason": receipt.void_reason,
        "voided_at": receipt.voided_at,
        "voided_by": names.get(receipt.voided_by) if receipt.voided_by else None,
    }
    if lines:
        people = households.masked_people(
            session, person_ids=sorted({line.person_id for line in receipt.lines})
        )
        view["lines"] = [
            {
                "person_id": line.person_id,
                "name": people[line.person_id]["name"],
                "id_number": people[line.person_id]["id_number"],
                "insurance": line.insurance,
                "insurance_name": INSURANCE_NAMES[line.insurance],
                "pension_tier": line.pension_tier,
                "amount_fen": line.amount_fen,
            }
            for line in receipt.lines
        ]
    return view


def _code_name(place: dict[str, Any] | None) -> dict[str, str] | None:
    return {"code": place["code"], "name": place["name"]} if place else None


# Collecting --------------------------------------------------------------------------------------


def collect_once(
    db: Database,
    *,
    staff: StaffAccount,
    household_id: int,
    year: int,
    choices: Sequence[Choice],
    today: date,
    now: datetime,
    idempotency_key: str,
    request_hash: str,
) -> tuple[Receipt, bool]:
    """Issue the receipt once per (agent, key); (the receipt, whether it was issued now).

    Commits (the edge of the collection's one transaction), so a rival request with the same
    key that lost the race can be answered with the winner's receipt: a concurrent copy fails
    (already paid, the contributions' unique index or the key's), is rolled back, and finds
    the receipt; any other failure is raised as it is.
    """
    session = db.session()
    existing = _by_key(session, staff.id, idempotency_key)
    if existing is not None:
        return _replayed(existing, request_hash), False
    try:
        receipt = collect(
            session,
            staff=staff,
            household_id=household_id,
            year=year,
            choices=choices,
            today=today,
            now=now,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        session.commit()
        return receipt, True
    except (DomainError, IntegrityError):
        # A copy of this request that committed first makes this one fail (already paid,
        # a tier no longer changeable, the key's unique constraint): answer its receipt.
        session.rollback()
        existing = _by_key(session, staff.id, idempotency_key)
        if existing is not None:
            return _replayed(existing, request_hash), False
        raise


def _by_key(session: Session, agent_id: int, key: str) -> Receipt | None:
    return session.scalars(
        select(Receipt)
        .where(Receipt.agent_id == agent_id, Receipt.idempotency_key == key)
        .options(selectinload(Receipt.lines))
    ).one_or_none()


def _replayed(receipt: Receipt, request_hash: str) -> Receipt:
    if receipt.request_hash != request_hash:
        raise IdempotencyConflict()
    return receipt


def collect(
    session: Session,
    *,
    staff: StaffAccount,
    household_id: int,
    year: int,
    choices: Sequence[Choice],
    today: date,
    now: datetime,
    idempotency_key: str,
    request_hash: str,
) -> Receipt:
    """Price the chosen premiums, book them (source agent, no tax record yet), number and
    write the receipt, audit it — in the caller's transaction (flush only)."""
    village_id = _agent_village(staff)
    place = households.household_place(session, household_id=household_id)
    if place is None or place["village"]["id"] != village_id:
        raise HouseholdNotFound()
    if not cash.collection_open(year=year, on=today):
        raise CollectionClosed()
    wanted = _wanted(choices)
    actor = f"staff:{staff.id}"
    for choice in choices:
        if choice.pension_tier is not None:
            households.choose_pension_tier(
                session,
                household_id=household_id,
                person_id=choice.person_id,
                year=year,
                tier=choice.pension_tier,
                viewer_person_id=0,
                actor=actor,
                today=today,
            )
    dues = {
        (d.person_id, d.insurance): d
        for d in cash.collectable_dues(session, household_id=household_id, year=year, on=today)
    }
    missing = [w for w in wanted if w not in dues]
    if missing:
        # Why not owed: paid is read after the dues, so a premium a rival paid between the
        # two reads is "already paid" (409), never "nothing owed".
        paid = paid_keys(session, household_id=household_id, year=year)
        already = [w for w in missing if w in paid]
        if already:
            raise cash.AlreadyPaid(errors={"json": {"items": [_item_label(w) for w in already]}})
        raise NothingOwed(errors={"json": {"items": [_item_label(w) for w in missing]}})
    medical_owed = {pid for pid, ins in dues if ins == "medical"}
    medical_chosen = {pid for pid, ins in wanted if ins == "medical"}
    if medical_chosen and medical_chosen != medical_owed:
        left_out = sorted(medical_owed - medical_chosen)
        raise MedicalHouseholdUnit(
            errors={"json": {"items": [f"成员 {pid} 也须缴纳居民医疗保险" for pid in left_out]}}
        )
    chosen = [dues[w] for w in wanted]
    contribution_ids = cash.book_agent_cash(
        session, household_id=household_id, dues=chosen, paid_at=now
    )
    seq = _next_seq(session, village_id=village_id, year=year)
    receipt = Receipt(
        receipt_no=receipt_number(place["village"]["code"], year, seq),
        village_id=village_id,
        year=year,
        seq=seq,
        household_id=household_id,
        agent_id=staff.id,
        amount_fen=sum(d.amount_fen for d in chosen),
        issued_on=today,
        issued_at=now,
        status=ReceiptStatus.ISSUED,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        lines=[
            ReceiptLine(
                person_id=d.person_id,
                insurance=d.insurance,
                pension_tier=d.pension_tier,
                amount_fen=d.amount_fen,
                contribution_id=contribution_id,
            )
            for d, contribution_id in zip(chosen, contribution_ids, strict=True)
        ],
    )
    session.add(receipt)
    session.flush()
    audit(
        session,
        actor=actor,
        action="collection.receipt",
        subject=f"receipt:{receipt.receipt_no}",
        detail={
            "household_id": household_id,
            "year": year,
            "amount_fen": receipt.amount_fen,
            "items": [[d.person_id, d.insurance, d.amount_fen] for d in chosen],
        },
    )
    return receipt


def _wanted(choices: Sequence[Choice]) -> list[tuple[int, str]]:
    """(person, insurance) pairs in a stable order; a pair twice or a tier without pension is
    a 422."""
    wanted: list[tuple[int, str]] = []
    errors: list[str] = []
    for choice in choices:
        if choice.pension_tier is not None and "pension" not in choice.insurances:
            errors.append(f"成员 {choice.person_id} 未选择居民养老保险，不应填写缴费档次")
        for insurance in choice.insurances:
            key = (choice.person_id, insurance)
            if key in wanted:
                errors.append(f"成员 {choice.person_id} 的{INSURANCE_NAMES[insurance]}重复")
            wanted.append(key)
    if errors:
        raise InvalidInput(errors={"json": {"items": errors}})
    return sorted(wanted)


def _item_label(key: tuple[int, str]) -> str:
    return f"成员 {key[0]}：{INSURANCE_NAMES.get(key[1], key[1])}"


def _next_seq(session: Session, *, village_id: int, year: int) -> int:
    """The village's next receipt number for `year`, in the caller's transaction.

    A conditional UPDATE … RETURNING: on PostgreSQL it row-locks the counter until commit, so
    a concurrent collection of the same village waits here and then reads the committed value;
    a rollback undoes the increment. The first receipt of a year inserts the row; two firsts at
    once collide on its primary key, and the loser (its savepoint rolled back) increments."""
    bump = (
        update(ReceiptCounter)
        .where(ReceiptCounter.village_id == village_id, ReceiptCounter.year == year)
        .values(last_seq=ReceiptCounter.last_seq + 1)
        .returning(ReceiptCounter.last_seq)
        .execution_options(synchronize_session=False)
    )
    seq = session.scalar(bump)
    if seq is not None:
        return int(seq)
    try:
        with session.begin_nested():
            session.execute(
                insert(ReceiptCounter).values(village_id=village_id, year=year, last_seq=1)
            )
        return 1
    except IntegrityError:
        seq = session.scalar(bump)
        if seq is None:  # pragma: no cover - the row exists: the insert just collided with it
            raise
        return int(seq)


# Voiding -----------------------------------------------------------------------------------------


def void(
    session: Session, *, staff: StaffAccount, receipt_no: str, reason: str, now: datetime
) -> Receipt:
    """Void one of the agent's village's receipts: it keeps its number and records why; its
    contributions are reversed (the persons owe again; the cash goes back to the household).
    Flush only."""
    _agent_village(staff)
    receipt = find_receipt(session, staff=staff, receipt_no=receipt_no, lock=True)
    voided = session.scalar(
        update(Receipt)
        .where(Receipt.id == receipt.id, Receipt.status == ReceiptStatus.ISSUED)
        .values(status=ReceiptStatus.VOIDED, void_reason=reason, voided_at=now, voided_by=staff.id)
        .returning(Receipt.id)
        .execution_options(synchronize_session=False)
    )
    if voided is None:
        raise ReceiptVoided()
    reversed_ids = cash.void_agent_cash(session, [line.contribution_id for line in receipt.lines])
    audit(
        session,
        actor=f"staff:{staff.id}",
        action="collection.void",
        subject=f"receipt:{receipt.receipt_no}",
        detail={"reason": reason, "reversed_contributions": reversed_ids},
    )
    session.flush()
    session.refresh(receipt)
    return receipt
