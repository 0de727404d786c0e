"""Writing audit events. Callers pass masked values only: the log is read by auditors."""

from __future__ import annotations

from typing import Any

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
