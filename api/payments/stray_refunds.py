"""Stray refunds 不明来款退回: money a channel took under an out_trade_no that is not ours.

There is no order, so nothing of ours to reverse: a `StrayRefund` is decided inside the
transaction that approves it (state `requested`, `request_stray_refund`) and sent after commit
by the same processor loop as `Refund` (`process_due_stray_refunds`, called by the worker and
by `payments process-refunds`), through the channel adapter's `refund` call, under its own
out_refund_no — a channel refunds one out_refund_no at most once, so a resend after a lost
answer cannot pay twice. The channel's answer, its refund notification (WeChat notifies the
refund's notify_url; Alipay an unknown trade's notify_url, i.e. none) or a refund query book the
result through `apply_refund_answer`, the one entry for refund answers of either kind.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api import clock
from api.config import Config
from api.db import Database, utcnow
from api.errors import InvalidInput
from api.payments.channels import ChannelError, ChannelRefund, get_channel, new_out_refund_no
from api.payments.models import NotificationOutcome, RefundReason, RefundState, StrayRefund
from api.payments.refunds import (
    CLAIM_SECONDS,
    MAX_BACKOFF_SECONDS,
    REFUND_NOTIFY_PATHS,
    RefundApplied,
    apply_refund_result,
)
from api.payments.states import (
    FINAL_REFUND_STATES,
    record_new_stray_refund,
    transition_stray_refund,
)

log = logging.getLogger(__name__)
PROCESSOR = "refund-processor"


def request_stray_refund(
    session: Session,
    *,
    channel: str,
    out_trade_no: str,
    transaction_id: str | None,
    amount_fen: int,
    actor: str,
    note: str | None = None,
) -> StrayRefund:
    """Decide to send a stray trade's whole amount back (state `requested`; sent later)."""
    if amount_fen <= 0:
        raise InvalidInput("退费金额必须大于零", code="nothing_to_refund")
    now = utcnow()
    stray = StrayRefund(
        out_refund_no=new_out_refund_no(now=clock.now()),
        channel=channel,
        out_trade_no=out_trade_no,
        transaction_id=transaction_id,
        total_fen=amount_fen,
        amount_fen=amount_fen,
        reason=RefundReason.UNKNOWN_TRADE,
        note=note,
        state=RefundState.REQUESTED,
        requested_by=actor,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(stray)
    session.flush()
    record_new_stray_refund(session, stray, actor=actor)
    return stray


def process_due_stray_refunds(
    db: Database, settings: Config, *, limit: int = 50, only: list[int] | None = None
) -> dict[str, int]:
    """Send due `requested` stray refunds and ask about `processing` ones that are overdue.

    Commits (a worker job): claim → commit → call the channel → book → commit, as
    `refunds.process_due_refunds` does for refunds of our orders.
    """
    counts: dict[str, int] = {}
    for stray_id in _claim_due(db, limit=limit, only=only):
        result = _send(db, settings, stray_id)
        counts[result] = counts.get(result, 0) + 1
    for stray_id in _overdue(db, settings, limit=limit, only=only):
        result = _ask(db, settings, stray_id)
        counts[f"query_{result}"] = counts.get(f"query_{result}", 0) + 1
    return counts


def _claim_due(db: Database, *, limit: int, only: list[int] | None) -> list[int]:
    claimed: list[int] = []
    with db.job() as session:
        now = utcnow()
        query = (
            select(StrayRefund.id)
            .where(StrayRefund.state == RefundState.REQUESTED, StrayRefund.next_attempt_at <= now)
            .order_by(StrayRefund.next_attempt_at, StrayRefund.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if only is not None:
            query = query.where(StrayRefund.id.in_(only))
        for stray_id in session.scalars(query).all():
            won = session.execute(
                update(StrayRefund)
                .where(
                    StrayRefund.id == stray_id,
                    StrayRefund.state == RefundState.REQUESTED,
                    StrayRefund.next_attempt_at <= now,
                )
                .values(
                    next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS),
                    attempts=StrayRefund.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if won.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(stray_id)
    return claimed


def _send(db: Database, settings: Config, stray_id: int) -> str:
    with db.job() as session:
        stray = session.get(StrayRefund, stray_id)
        assert stray is not None
        channel_name, attempts = stray.channel, stray.attempts
        out_trade_no, out_refund_no = stray.out_trade_no, stray.out_refund_no
        total_fen, refund_fen = stray.total_fen, stray.amount_fen
    notify_url = settings.PUBLIC_BASE_URL.rstrip("/") + REFUND_NOTIFY_PATHS[channel_name]
    try:
        answer = get_channel(settings, channel_name).refund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            total_fen=total_fen,
            refund_fen=refund_fen,
            reason="不明来款退回",
            notify_url=notify_url,
        )
    except ChannelError as exc:
        log.warning(
            "stray refund refused by the channel",
            extra={"out_refund_no": out_refund_no, "code": exc.code},
        )
        with db.job() as session:
            stray = session.get(StrayRefund, stray_id)
            assert stray is not None
            if exc.retryable or exc.code in ("NOTENOUGH", "network"):
                delay = min(MAX_BACKOFF_SECONDS, 30 * 2 ** max(0, attempts - 1))
                stray.last_error = str(exc)[:200]
                stray.next_attempt_at = utcnow() + timedelta(seconds=delay)
                return "retry"
            transition_stray_refund(
                session,
                stray,
                RefundState.FAILED,
                actor="system",
                reason="channel_refused",
                values={"last_error": str(exc)[:200]},
            )
        return "failed"
    with db.job() as session:
        applied = apply_refund_answer(session, answer=answer, actor=PROCESSOR)
    return applied.reason or str(applied.outcome)


def _overdue(db: Database, settings: Config, *, limit: int, only: list[int] | None) -> list[int]:
    """Stray refunds `processing` whose next question is due (their notification may be lost)."""
    with db.job() as session:
        query = (
            select(StrayRefund.id)
            .where(
                StrayRefund.state == RefundState.PROCESSING,
                StrayRefund.next_attempt_at
                <= utcnow() - timedelta(minutes=settings.RECONCILE_REFUNDS_AFTER_MINUTES),
            )
            .order_by(StrayRefund.next_attempt_at, StrayRefund.id)
            .limit(limit)
        )
        if only is not None:
            query = query.where(StrayRefund.id.in_(only))
        return list(session.scalars(query))


def _ask(db: Database, settings: Config, stray_id: int) -> str:
    with db.job() as session:
        stray = session.get(StrayRefund, stray_id)
        assert stray is not None
        channel_name, out_trade_no, out_refund_no = (
            stray.channel,
            stray.out_trade_no,
            stray.out_refund_no,
        )
    try:
        answer = get_channel(settings, channel_name).query_refund(
            out_trade_no=out_trade_no, out_refund_no=out_refund_no
        )
    except ChannelError as exc:
        log.warning(
            "stray refund query failed", extra={"out_refund_no": out_refund_no, "code": exc.code}
        )
        return "error"
    with db.job() as session:
        stray = session.get(StrayRefund, stray_id)
        assert stray is not None
        if answer is None or answer.state == "processing":
            stray.next_attempt_at = utcnow()  # asked again after the same wait
            return "processing" if answer else "not_found"
        applied = apply_refund_answer(session, answer=answer, actor="refund-reconciler")
    return applied.reason or str(applied.outcome)


def apply_refund_answer(session: Session, *, answer: ChannelRefund, actor: str) -> RefundApplied:
    """Book a channel's answer about a refund of either kind (the notification, the processor
    and the refund healer all come here): a refund of our order through
    `refunds.apply_refund_result`, otherwise a stray refund of the same out_refund_no."""
    applied = apply_refund_result(session, answer=answer, actor=actor)
    if applied.reason != "unknown_refund":
        return applied
    query = select(StrayRefund).where(StrayRefund.out_refund_no == answer.out_refund_no)
    stray = session.scalars(query.with_for_update()).one_or_none()
    if stray is None:
        return applied
    if stray.out_trade_no != answer.out_trade_no:
        return RefundApplied(NotificationOutcome.REJECTED, "refund_order_mismatch")
    if answer.amount_fen != stray.amount_fen:
        return RefundApplied(NotificationOutcome.REJECTED, "amount_mismatch")
    if stray.state in FINAL_REFUND_STATES:
        return RefundApplied(NotificationOutcome.DUPLICATE)
    values: dict[str, object] = {"channel_refund_id": answer.refund_id} if answer.refund_id else {}
    if answer.state == "processing":
        if stray.state == RefundState.PROCESSING:
            return RefundApplied(NotificationOutcome.DUPLICATE)
        values["next_attempt_at"] = utcnow()
        moved = transition_stray_refund(
            session, stray, RefundState.PROCESSING, actor=actor, reason="accepted", values=values
        )
        reason = "refund_processing"
    elif answer.state in ("closed", "failed"):
        moved = transition_stray_refund(
            session, stray, RefundState.FAILED, actor=actor, reason=f"channel_{answer.state}"
        )
        reason = "refund_failed"
    else:
        if answer.succeeded_at is not None:
            values["succeeded_at"] = answer.succeeded_at
        moved = transition_stray_refund(
            session, stray, RefundState.SUCCEEDED, actor=actor, reason="succeeded", values=values
        )
        reason = "refund_succeeded"
    if not moved:
        return RefundApplied(NotificationOutcome.DUPLICATE)
    return RefundApplied(NotificationOutcome.APPLIED, reason)
