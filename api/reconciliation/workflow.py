"""The suspense pool (挂账) and what finance does with it: list, assign, comment, resolve,
approve. Every step is written to the item's history and to the audit log.

Maker–checker: an action that moves money (`refund`, `write_off`) only proposes; the item
waits in `pending_approval` until a *second* finance user approves it. The maker approving
their own proposal is refused (403 `maker_checker`), so no single person can write money off.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.db import utcnow
from api.errors import Conflict, DomainError, NotFound
from api.reconciliation.models import (
    MONEY_ACTIONS,
    ItemStatus,
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
    session: Session, *, offset: int, limit: int, **filters: Any
) -> tuple[list[ReconciliationItem], int]:
    query = item_query(**filters)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = session.scalars(
        query.order_by(ReconciliationItem.bill_date.desc(), ReconciliationItem.id)
        .offset(offset)
        .limit(limit)
    )
    return list(rows), total


def list_runs(
    session: Session, *, offset: int, limit: int, channel: str | None = None
) -> tuple[list[ReconciliationRun], int]:
    query = select(ReconciliationRun)
    if channel:
        query = query.where(ReconciliationRun.channel == channel)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = session.scalars(
        query.order_by(ReconciliationRun.bill_date.desc(), ReconciliationRun.channel)
        .offset(offset)
        .limit(limit)
    )
    return list(rows), total


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
    if item.status not in UNRESOLVED:
        raise Conflict("该差异已处理或正在审批中", code="item_not_open")
    before = item.status
    item.resolution = Resolution(action)
    item.reason = reason
    item.maker = actor
    item.updated_at = utcnow()
    if item.resolution in MONEY_ACTIONS:
        item.status = ItemStatus.PENDING_APPROVAL
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
    item.updated_at = utcnow()
    if approved:
        item.status = ItemStatus.RESOLVED
        item.checker = actor
        item.resolved_at = item.updated_at
    else:
        item.status = ItemStatus.OPEN
        item.resolution = None
        item.maker = None
    action = "approve" if approved else "reject"
    history(session, item, actor=actor, action=action, before=before, comment=note)
    _audit(session, item, actor, action)
    return item


def record_refusal(session: Session, item_id: int, *, actor: str) -> None:
    """Audit a refused self-approval (the refusal itself is worth a trail: who tried)."""
    item = _item(session, item_id)
    _audit(session, item, actor, "approve", outcome="refused_maker_checker")
