"""Writing audit events. Callers pass masked values only: the log is read by auditors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from api.audit.models import AuditEvent


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str = "",
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> AuditEvent:
    """Add an audit event to the caller's transaction (flushed, not committed)."""
    event = AuditEvent(
        actor=actor,
        action=action,
        subject=subject,
        outcome=outcome,
        detail=detail or {},
        remote_addr=remote_addr,
    )
    session.add(event)
    return event


def events_query(
    *,
    refused: bool | None = None,
    actor: str | None = None,
    actors: list[str] | None = None,
    action: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
) -> Select[Any]:
    """Audit events matching the filters (for readers: `api.oversight.audit` pages it by id).

    `refused`: True for every outcome other than "ok" (refused, refused_maker_checker, error),
    False for "ok" only. `since` inclusive, `before` exclusive."""
    query = select(AuditEvent)
    if refused is True:
        query = query.where(AuditEvent.outcome != "ok")
    elif refused is False:
        query = query.where(AuditEvent.outcome == "ok")
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if actors is not None:
        query = query.where(AuditEvent.actor.in_(actors))
    if action:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if before is not None:
        query = query.where(AuditEvent.at < before)
    return query
