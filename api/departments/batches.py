"""Per-department 代缴 batches 部门代缴批次 (issue 13 part 3), maker–checker with finance.

A department's draft batch (`draft`) is computed from the current state, for one year:
- `book` — persons whose medical 代缴 this department pays (DOMAIN.md "Which department pays":
  the first of 扶贫办, 民政, 残联 that lists them under a government-paid category), the rules
  say the government pays now, and nothing is paid yet;
- `reimburse` — such persons who had already paid themselves: they keep their contribution and
  the department pays the government's share back to them (个人已缴，代缴资金退付个人);
- `reverse` — government contributions this department paid for a person it no longer pays
  for (removed from the list, paid by another department, or dead before the year began).
Lines already in a batch are not drafted again (whichever department's batch holds them: a
person is booked or reimbursed once a year); a `book` line that did not book at approval (the
person had paid meanwhile, or another department pays now) releases its key (`ref = -id`).

`submit` (the department) freezes the draft into a batch; `approve` (finance, a different
user) books it in one transaction: each `book` line becomes a `source=government`
contribution with `paying_department` and its tax record (payments' `book_government`, the
transactional outbox); each `reverse` line reverses its contribution with a reversal record
(payments' ledger); `reimburse` lines are approved for payment to the person. Exactly once:
`department_batch_lines` is unique per year × person × insurance × kind × contribution, the
status moves are conditional updates, the contributions' partial unique index refuses a second
paid premium, and a reversal is conditional on `status = paid`.

Tier-100 pension and `hardship_approved` stay in district finance's batch (`flask payments
government-batch`), which leaves out the medical premiums a department pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.clock import now as clock_now
from api.db import utcnow
from api.departments.codes import DEPARTMENTS, MEDICAL_PAYER_ORDER, medical_payer
from api.departments.lists import department_of, policy_of
from api.departments.models import BatchLine, BatchLineKind, BatchStatus, DepartmentBatch
from api.errors import Conflict, NotFound
from api.households import categories as people
from api.payments import ledger
from api.payments.government import book_government, government_items, paid_facts
from api.policy import Policy
from api.policy.idnumber import mask_id_number, mask_name

REVERSAL_REASON = "government_removed"


@dataclass(frozen=True)
class DraftLine:
    person_id: int
    insurance: str
    kind: str
    amount_fen: int
    ref: int = 0  # reverse: the contribution reversed


def _payers(session: Session, policy: Policy, person_ids: list[int]) -> dict[int, str | None]:
    sources = people.category_sources(session, person_ids)
    result: dict[int, str | None] = {}
    for pid, held in sources.items():
        paying = {
            src
            for cat, src in held.items()
            if cat in policy.medical.government_categories and src in MEDICAL_PAYER_ORDER
        }
        result[pid] = medical_payer(paying)
    return result


def draft(session: Session, *, department: str, year: int, on: date) -> list[DraftLine]:
    """What the department's next batch holds now (nothing is written)."""
    department = department_of(department)
    policy = policy_of(year)
    candidates = people.persons_with_sources(session, [department])
    payers = _payers(session, policy, candidates)
    mine = [pid for pid in candidates if payers.get(pid) == department]
    items = [
        i
        for i in government_items(
            session, policy=policy, person_ids=mine, on=on, department=department
        )
        if i.insurance == "medical"
    ]
    paid = {
        (f.person_id, f.insurance): f
        for f in paid_facts(session, person_ids=[i.person_id for i in items], year=year)
    }
    lines: list[DraftLine] = []
    for item in items:
        fact = paid.get((item.person_id, item.insurance))
        if fact is None:
            lines.append(
                DraftLine(item.person_id, "medical", BatchLineKind.BOOK, item.government_pays_fen)
            )
        elif fact.source != "government":
            lines.append(
                DraftLine(
                    item.person_id, "medical", BatchLineKind.REIMBURSE, item.government_pays_fen
                )
            )
    payable = {i.person_id for i in items}
    booked = paid_facts(session, year=year, paying_department=department)
    died = people.persons_by_id(session, [f.person_id for f in booked])
    for fact in booked:
        if fact.person_id in payable:
            continue
        person = died.get(fact.person_id)
        dead_in_year = (
            person is not None
            and person.deceased_on is not None
            and person.deceased_on >= policy.coverage_start
        )
        if dead_in_year:
            continue  # covered until death: nothing goes back (DOMAIN.md)
        lines.append(
            DraftLine(
                fact.person_id,
                fact.insurance,
                BatchLineKind.REVERSE,
                fact.government_pays_fen,
                fact.id,
            )
        )
    taken = _taken(session, year=year, lines=lines)
    return [ln for ln in lines if (ln.person_id, ln.insurance, ln.kind, ln.ref) not in taken]


def _taken(
    session: Session, *, year: int, lines: list[DraftLine]
) -> set[tuple[int, str, str, int]]:
    if not lines:
        return set()
    rows = session.execute(
        select(BatchLine.person_id, BatchLine.insurance, BatchLine.kind, BatchLine.ref).where(
            BatchLine.year == year, BatchLine.person_id.in_(sorted({ln.person_id for ln in lines}))
        )
    ).all()
    return {(r[0], r[1], r[2], int(r[3])) for r in rows}


def _totals(lines: list[Any]) -> dict[str, dict[str, int]]:
    totals = {k.value: {"lines": 0, "amount_fen": 0} for k in BatchLineKind}
    for ln in lines:
        totals[str(ln.kind)]["lines"] += 1
        totals[str(ln.kind)]["amount_fen"] += ln.amount_fen
    return totals


def _line_views(session: Session, lines: list[Any]) -> list[dict[str, Any]]:
    who = people.persons_by_id(session, sorted({ln.person_id for ln in lines}))
    labels = {
        BatchLineKind.BOOK: "代缴",
        BatchLineKind.REIMBURSE: "个人已缴，代缴资金退付个人",
        BatchLineKind.REVERSE: "代缴冲销（已不在名单）",
    }
    views = []
    for ln in lines:
        p = who[ln.person_id]
        views.append(
            {
                "person_id": ln.person_id,
                "id_number": mask_id_number(p.id_number),
                "name": mask_name(p.name),
                "birth_year": p.birth_date.year,
                "insurance": ln.insurance,
                "kind": str(ln.kind),
                "label": labels[BatchLineKind(ln.kind)],
                "amount_fen": ln.amount_fen,
                "contribution_id": getattr(ln, "contribution_id", None)
                or (ln.ref if ln.kind == BatchLineKind.REVERSE else None),
                "outcome": getattr(ln, "outcome", "draft"),
            }
        )
    return views


def draft_view(session: Session, *, department: str, year: int, on: date) -> dict[str, Any]:
    lines = draft(session, department=department, year=year, on=on)
    batches = session.scalars(
        select(DepartmentBatch)
        .where(DepartmentBatch.department == department, DepartmentBatch.year == year)
        .order_by(DepartmentBatch.id.desc())
        .limit(50)
    ).all()
    return {
        "department": department,
        "department_name": DEPARTMENTS[department].name,
        "year": year,
        "totals": _totals(lines),
        "lines": _line_views(session, lines),
        "batches": [batch_summary(b) for b in batches],
    }


def batch_summary(batch: DepartmentBatch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "department": batch.department,
        "year": batch.year,
        "status": batch.status,
        "submitted_by": batch.submitted_by,
        "submitted_at": batch.submitted_at,
        "approved_by": batch.approved_by,
        "approved_at": batch.approved_at,
        "totals": batch.totals,
    }


def batch_view(session: Session, batch: DepartmentBatch) -> dict[str, Any]:
    return {**batch_summary(batch), "lines": _line_views(session, list(batch.lines))}


def get_batch(session: Session, *, batch_id: int, department: str | None) -> DepartmentBatch:
    batch = session.get(DepartmentBatch, batch_id)
    if batch is None or (department is not None and batch.department != department):
        raise NotFound("未找到该代缴批次", code="batch_not_found")
    return batch


def submit(
    session: Session, *, department: str, year: int, on: date, actor: str
) -> DepartmentBatch:
    """Freeze the draft into a submitted batch (409 when there is nothing to submit)."""
    lines = draft(session, department=department, year=year, on=on)
    if not lines:
        raise Conflict("没有需要提交的代缴明细", code="batch_empty")
    batch = DepartmentBatch(
        department=department,
        year=year,
        status=BatchStatus.SUBMITTED,
        submitted_by=actor,
        submitted_at=utcnow(),
        totals=_totals(lines),
    )
    batch.lines = [
        BatchLine(
            year=year,
            person_id=ln.person_id,
            insurance=ln.insurance,
            kind=ln.kind,
            ref=ln.ref,
            amount_fen=ln.amount_fen,
            outcome="pending",
        )
        for ln in lines
    ]
    try:
        with session.begin_nested():
            session.add(batch)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("部分明细已在另一批次中，请刷新后重试", code="batch_line_taken") from exc
    audit(
        session,
        actor=actor,
        action="departments.batch_submit",
        subject=f"department-batch:{batch.id}",
        detail={"department": department, "year": year, "totals": batch.totals},
    )
    return batch


def approve(session: Session, *, batch_id: int, actor: str, on: date) -> DepartmentBatch:
    """Finance approves a submitted batch and books it (once; never by its submitter)."""
    batch = get_batch(session, batch_id=batch_id, department=None)
    if batch.status == BatchStatus.APPROVED:
        return batch
    if actor == batch.submitted_by:
        audit(
            session,
            actor=actor,
            action="departments.batch_approve",
            subject=f"department-batch:{batch.id}",
            outcome="refused",
            detail={"reason": "self_approval"},
        )
        raise Conflict("提交批次的人不能审批同一批次", code="self_approval")
    won = session.execute(
        update(DepartmentBatch)
        .where(DepartmentBatch.id == batch.id, DepartmentBatch.status == BatchStatus.SUBMITTED)
        .values(status=BatchStatus.APPROVED, approved_by=actor, approved_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(batch)
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return batch
    policy = policy_of(batch.year)
    book = {ln.person_id: ln for ln in batch.lines if ln.kind == BatchLineKind.BOOK}
    payers = _payers(session, policy, sorted(book))
    book_now = sorted(pid for pid in book if payers.get(pid) == batch.department)
    items = [
        i
        for i in government_items(
            session, policy=policy, person_ids=book_now, on=on, department=batch.department
        )
        if i.insurance == "medical" and i.person_id in book
    ]
    paid = ledger.already_paid(
        session, year=batch.year, keys=((i.person_id, i.insurance) for i in items)
    )
    todo = [i for i in items if (i.person_id, i.insurance) not in paid]
    ids = book_government(
        session, policy=policy, items=todo, paid_at=clock_now(), paying_department=batch.department
    )
    booked = {i.person_id: cid for i, cid in zip(todo, ids, strict=True)}
    for pid, ln in book.items():
        if pid in booked:
            ln.contribution_id, ln.outcome = booked[pid], "booked"
        else:
            ln.outcome = "already_paid" if pid in {p for p, _ in paid} else "no_longer_due"
            ln.ref = -ln.id  # releases its key: a later batch may hold the person again
    # A booked line whose person another department now pays, or who left the list since the
    # batch was submitted, is not booked ("no_longer_due"); the next draft shows what is due.
    reversed_ids = set(
        ledger.reverse_contributions(
            session,
            [ln.ref for ln in batch.lines if ln.kind == BatchLineKind.REVERSE],
            reason=REVERSAL_REASON,
        )
    )
    for ln in batch.lines:
        if ln.kind == BatchLineKind.REVERSE:
            ln.contribution_id = ln.ref
            ln.outcome = "reversed" if ln.ref in reversed_ids else "already_reversed"
        elif ln.kind == BatchLineKind.REIMBURSE:
            ln.outcome = "approved"
    session.flush()
    audit(
        session,
        actor=actor,
        action="departments.batch_approve",
        subject=f"department-batch:{batch.id}",
        detail={
            "department": batch.department,
            "year": batch.year,
            "booked": len(booked),
            "reversed": len(reversed_ids),
            "reimburse": sum(1 for ln in batch.lines if ln.kind == BatchLineKind.REIMBURSE),
        },
    )
    return batch


def list_batches(session: Session, *, status: str | None) -> list[DepartmentBatch]:
    query = select(DepartmentBatch).order_by(DepartmentBatch.id.desc()).limit(200)
    if status is not None:
        query = query.where(DepartmentBatch.status == status)
    return list(session.scalars(query))
