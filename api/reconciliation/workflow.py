"""The suspense pool (挂账) and what finance does with it: list, assign, comment, resolve,
approve. Every step is written to the item's history and to the audit log.

Maker–checker: an action that moves money (`refund`, `write_off`) only proposes; the item
waits in `pending_approval` until a *second* finance user approves it. The maker approving
their own proposal is refused (403 `maker_checker`), so no single person can write money off.
Approving a `write_off` resolves the item (bookkeeping, no money moves); approving a `refund`
decides the refund in the same transaction (`reconciliation.refunds`) and the item waits in
`refund_pending` until the refund is final.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from api.audit.service import record as audit
from api.db import utcnow
from api.errors import Conflict, DomainError, NotFound
from api.extensions.cursor import keyset, page
from api.reconciliation import refunds
from api.reconciliation.models import (
    MONEY_ACTIONS,
    ItemStatus,
    Outcome,
    ReconciliationItem,
    ReconciliationItemEvent,
    ReconciliationRun,
    Resolution,
)
from api.reconciliation.runs import history

UNRESOLVED = (ItemStatus.OPEN, ItemStatus.RECHECK)


class MakerChecker(DomainError):
    status = 403
    code = "maker_checker"
    message = "资金类处理须由另一名财务人员审批，不能审批自己提交的处理"


def _item(session: Session, item_id: int, *, lock: bool = False) -> ReconciliationItem:
    query = select(ReconciliationItem).where(ReconciliationItem.id == item_id)
    if lock:
        query = query.with_for_update()
    item = session.scalars(query).one_or_none()
    if item is None:
        raise NotFound("对账差异不存在", code="item_not_found")
    return item


def item_query(
    *,
    status: str | None = None,
    type: str | None = None,
    channel: str | None = None,
    date: date | None = None,
    run_id: int | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> Any:
    query = select(ReconciliationItem)
    if date_from:
        query = query.where(ReconciliationItem.bill_date >= date_from)
    if date_to:
        query = query.where(ReconciliationItem.bill_date <= date_to)
    if status:
        query = query.where(ReconciliationItem.status == status)
    if type:
        query = query.where(ReconciliationItem.type == type)
    if channel:
        query = query.where(ReconciliationItem.channel == channel)
    if date:
        query = query.where(ReconciliationItem.bill_date == date)
    if run_id is not None:
        query = query.where(ReconciliationItem.run_id == run_id)
    return query


def list_items(
    session: Session, *, page_args: dict[str, Any], **filters: Any
) -> tuple[list[ReconciliationItem], str | None]:
    """One page of items by id cursor, newest first by default: (rows, next_cursor). An item
    re-checked or resolved while someone pages stays where it was; a new run's items come
    after the cursor, never into the middle of a page already read."""
    query = keyset(item_query(**filters), ReconciliationItem.id, page_args)
    return page(session.scalars(query).all(), page_args, id_of=lambda i: i.id)


def run_items(session: Session, run_id: int) -> list[ReconciliationItem]:
    """Every item of one run, in id order (for the run's export)."""
    query = item_query(run_id=run_id).order_by(ReconciliationItem.id)
    return list(session.scalars(query))


def list_runs(
    session: Session, *, page_args: dict[str, Any], channel: str | None = None
) -> tuple[list[ReconciliationRun], str | None]:
    """One page of runs by id cursor, newest first by default: (rows, next_cursor)."""
    query = select(ReconciliationRun)
    if channel:
        query = query.where(ReconciliationRun.channel == channel)
    query = keyset(query, ReconciliationRun.id, page_args)
    return page(session.scalars(query).all(), page_args, id_of=lambda r: r.id)


def get_run(session: Session, run_id: int) -> ReconciliationRun:
    run = session.get(ReconciliationRun, run_id)
    if run is None:
        raise NotFound("对账批次不存在", code="run_not_found")
    return run


def get_item(session: Session, item_id: int) -> ReconciliationItem:
    return _item(session, item_id)


def item_history(session: Session, item_id: int) -> list[ReconciliationItemEvent]:
    _item(session, item_id)
    return list(
        session.scalars(
            select(ReconciliationItemEvent)
            .where(ReconciliationItemEvent.item_id == item_id)
            .order_by(ReconciliationItemEvent.id)
        )
    )


def _audit(
    session: Session, item: ReconciliationItem, actor: str, action: str, **detail: Any
) -> None:
    audit(
        session,
        actor=actor,
        action=f"reconciliation.item.{action}",
        subject=f"reconciliation_item:{item.id}",
        detail={"type": item.type, "status": item.status, **detail},
    )


def assign(session: Session, item_id: int, *, assignee: str, actor: str) -> ReconciliationItem:
    item = _item(session, item_id, lock=True)
    item.assignee = assignee
    item.updated_at = utcnow()
    history(session, item, actor=actor, action="assign", before=item.status, comment=assignee)
    _audit(session, item, actor, "assign", assignee=assignee)
    return item


def comment(session: Session, item_id: int, *, text: str, actor: str) -> ReconciliationItem:
    item = _item(session, item_id, lock=True)
    item.updated_at = utcnow()
    history(session, item, actor=actor, action="comment", before=item.status, comment=text)
    _audit(session, item, actor, "comment")
    return item


def resolve(
    session: Session, item_id: int, *, action: str, reason: str, actor: str
) -> ReconciliationItem:
    """Resolve with `action`; money-moving actions wait for a checker's approval."""
    item = _item(session, item_id, lock=True)
    refund = action == Resolution.REFUND
    if item.status not in UNRESOLVED and not (refund and refunds.may_refund_resolved(item)):
        raise Conflict("该差异已处理或正在审批中", code="item_not_open")
    if refund:
        refunds.check_applicable(session, item)
    before = item.status
    item.resolution = Resolution(action)
    item.reason = reason
    item.maker = actor
    item.updated_at = utcnow()
    if item.resolution in MONEY_ACTIONS:
        item.status = ItemStatus.PENDING_APPROVAL
        item.resolved_at = None
    else:
        item.status = ItemStatus.RESOLVED
        item.resolved_at = item.updated_at
    history(session, item, actor=actor, action=f"resolve:{action}", before=before, comment=reason)
    _audit(session, item, actor, "resolve", resolution=action)
    return item


def approve(
    session: Session, item_id: int, *, approved: bool, note: str | None, actor: str
) -> ReconciliationItem:
    """The checker's decision on a pending refund / write_off (never the maker's own)."""
    item = _item(session, item_id, lock=True)
    if item.status != ItemStatus.PENDING_APPROVAL:
        raise Conflict("该差异没有待审批的处理", code="nothing_to_approve")
    if item.maker == actor:
        raise MakerChecker()
    before = item.status
    # A rejected refund of a healed payment leaves it healed, as it was before the proposal.
    healed = item.type == Outcome.MISSING_OURS and item.heal_result == "healed"
    after = ItemStatus.RESOLVED if healed else ItemStatus.OPEN
    if approved:
        after = ItemStatus.REFUND_PENDING
        if item.resolution != Resolution.REFUND:
            after = ItemStatus.RESOLVED
    _claim(session, item, after)
    item.updated_at = utcnow()
    decided = None
    if approved and item.resolution == Resolution.REFUND:
        decided = refunds.decide(session, item, actor=actor, note=note)
        item.checker = actor
        item.refund_out_refund_no = decided.out_refund_no
        item.refund_amount_fen = decided.amount_fen
    elif approved:
        item.checker = actor
        item.resolved_at = item.updated_at
    else:
        item.resolution = Resolution.HEALED if healed else None
        item.maker = None
        item.resolved_at = item.updated_at if healed else None
    action = "approve" if approved else "reject"
    history(session, item, actor=actor, action=action, before=before, comment=note)
    if decided is not None:
        history(
            session,
            item,
            actor=actor,
            action="refund_requested",
            before=item.status,
            comment=f"{decided.out_refund_no} {decided.kind} {decided.amount_fen} 分",
        )
        _audit(
            session,
            item,
            actor,
            action,
            out_refund_no=decided.out_refund_no,
            refund_kind=decided.kind,
            amount_fen=decided.amount_fen,
        )
    else:
        _audit(session, item, actor, action)
    return item


def _claim(session: Session, item: ReconciliationItem, to: str) -> None:
    """Move the item out of `pending_approval` with a conditional UPDATE, so of two checkers
    approving at once exactly one wins (SQLite has no row lock; PostgreSQL's FOR UPDATE above
    already serialises them) — the loser decides no refund."""
    table: Any = ReconciliationItem.__table__
    moved = session.execute(
        update(table)
        .where(table.c.id == item.id, table.c.status == ItemStatus.PENDING_APPROVAL)
        .values(status=str(to))
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("该差异没有待审批的处理", code="nothing_to_approve")
    set_committed_value(item, "status", str(to))


def record_refusal(session: Session, item_id: int, *, actor: str) -> None:
    """Audit a refused self-approval (the refusal itself is worth a trail: who tried)."""
    item = _item(session, item_id)
    _audit(session, item, actor, "approve", outcome="refused_maker_checker")
