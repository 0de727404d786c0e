"""Receiving gateway notifications 支付回调 (PROTOCOLS.md §1.5, §1.8, §2.4, §4, §5.5).

This flow commits on its own, in this order, because each step must survive the next one's
failure:

1. the raw notification is stored in the callback log and COMMITTED first, so even one whose
   processing later fails is on record (`store_raw`);
2. the channel adapter verifies it (signature, app id, merchant id) and parses it — outside
   any transaction, since the Alipay refund path may query the gateway;
3. the verified content is applied (`settlement` / `refunds`) together with the log row's
   outcome in ONE transaction, which is committed;
4. only then does the route send the exact success reply.

Copies of one notification (retries, or the "several servers within a few seconds" WeChat
warns about) queue on the order's row lock (PostgreSQL SELECT … FOR UPDATE; SQLite has one
writer): the first applies, the rest see the new state and answer success having changed
nothing. A race lost another way (a conditional update that matched nothing, a unique
violation on the contribution) is rolled back and applied again in a fresh transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, bindparam, func, insert, select, text, true, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from api import clock
from api.audit.service import record as audit
from api.config import Config
from api.db import Database, is_outage, utcnow
from api.payments.channels import (
    NotificationRejected,
    PaymentChannel,
    Reply,
    VerifiedNotification,
    get_channel,
)
from api.payments.models import ChannelNotification, NotificationOutcome
from api.payments.refunds import RefundApplied
from api.payments.settlement import Applied, apply_closed, apply_payment
from api.payments.states import LostRace
from api.payments.stray_refunds import apply_refund_answer

log = logging.getLogger(__name__)

# Headers never worth keeping (a gateway sends none of these; a probe might).
DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
SIGNATURE_REASONS = frozenset({"bad_signature", "decrypt_failed", "unknown_serial"})
ATTEMPTS = 4
# A row still `received` this long after it arrived is not in flight any more: its request
# died with the database (or the process) between storing and finishing it.
SWEEP_AFTER = timedelta(minutes=5)
T = TypeVar("T")


def receive(
    db: Database,
    settings: Config,
    *,
    channel_name: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    remote_addr: str | None,
) -> Reply:
    """Handle one notification end to end; returns the exact reply to send.

    A database that cannot be reached (`api.db.is_outage`) is answered with the channel's own
    failure reply and HTTP 503, so the gateway sends the notification again later (PROTOCOLS.md
    §1.5, §2.4, §5.5); a row stored before the outage and not finished is ended by the
    worker's sweep (`sweep_unfinished`).
    """
    channel = get_channel(settings, channel_name)
    try:
        return _receive(
            db, channel, channel_name=channel_name, path=path, headers=headers, body=body,
            remote_addr=remote_addr,
        )  # fmt: skip
    except (DBAPIError, PoolTimeout) as exc:
        if not is_outage(exc):
            raise
        db.session.remove()
        log.warning("notification: database unavailable, the gateway will retry", exc_info=exc)
        failure = channel.failure_reply("database_unavailable")
        return Reply(503, failure.body, failure.content_type)


def _receive(
    db: Database,
    channel: PaymentChannel,
    *,
    channel_name: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    remote_addr: str | None,
) -> Reply:

    def store() -> int:
        return store_raw(
            db, channel=channel_name, path=path, headers=headers, body=body, remote_addr=remote_addr
        )

    try:
        log_id = store()
    except DBAPIError as exc:
        # A pooled connection the server dropped (`api.db.ping_when_idle`): once more, on a
        # fresh one. Anything else, or a second failure, is the gateway's to retry.
        db.session.remove()
        if not exc.connection_invalidated:
            raise
        log.warning("callback log: connection lost, storing again", exc_info=exc)
        log_id = store()
    try:
        verified = channel.parse_notification(headers, body, path)
    except NotificationRejected as exc:
        log.warning(
            "notification rejected",
            extra={"channel": channel_name, "reason": exc.reason, "log_id": log_id},
        )
        _finish_alone(
            db,
            log_id,
            outcome=NotificationOutcome.REJECTED,
            reason=exc.reason,
            detail=exc.detail,
            signature_valid=False if exc.reason in SIGNATURE_REASONS else None,
            refused_by=f"gateway:{channel_name}",
        )
        return channel.failure_reply(exc.reason)
    return _apply(db, channel, channel_name, log_id, verified)


def store_raw(
    db: Database,
    *,
    channel: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    remote_addr: str | None,
) -> int:
    """Step 1: the callback log row, in its own committed transaction.

    On PostgreSQL this one commit is asynchronous (`synchronous_commit = off` for this
    transaction only): it does not wait for its WAL flush, saving a disk sync per
    notification. Nothing is lost by it: the apply transaction that follows commits
    synchronously, and flushing its WAL flushes this row's too; if the server crashed before
    that, the gateway got no reply and sends the notification again (PROTOCOLS.md §4).
    """
    params = {
        "channel": channel,
        "path": path[:128],
        "raw_body": body,
        "content_type": headers.get("Content-Type") or None,
        "headers": {k: v for k, v in headers.items() if k.lower() not in DROPPED_HEADERS},
        "remote_addr": remote_addr,
        # `clock.now()`: with APP_TODAY pinned (demo, sandbox) the log carries the same date
        # as the orders and payments it records, so finance's date filter finds them.
        "received_at": clock.now(),
        "outcome": NotificationOutcome.RECEIVED.value,
    }
    session = db.session()
    bind = session.get_bind()
    log_id: int
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        # One round trip instead of four (BEGIN, SET LOCAL, INSERT, COMMIT): the INSERT is its
        # own transaction (autocommit) and turns its own synchronous_commit off (set_config
        # with is_local = true lasts until that transaction's commit, which it governs).
        connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        log_id = connection.execute(_LOG_INSERT_ASYNC, params).scalar_one()
    else:
        # SQLite, or a session inside an outer transaction (tests): a plain transaction.
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.execute(_ASYNC_COMMIT)
        log_id = connection.execute(_LOG_INSERT, params).scalar_one()
    session.commit()
    return log_id


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")
_LOG_TABLE = ChannelNotification.__table__
_LOG_INSERT = insert(_LOG_TABLE).returning(_LOG_TABLE.c.id)  # type: ignore[arg-type]
_LOG_COLUMNS = (
    "channel",
    "path",
    "raw_body",
    "content_type",
    "headers",
    "remote_addr",
    "received_at",
    "outcome",
)
_LOG_INSERT_ASYNC = (
    insert(_LOG_TABLE)  # type: ignore[arg-type]
    .from_select(
        _LOG_COLUMNS,
        select(
            *(bindparam(name, type_=_LOG_TABLE.c[name].type) for name in _LOG_COLUMNS)
        ).select_from(
            select(func.set_config("synchronous_commit", "off", true())).subquery("async_commit")
        ),
    )
    .returning(_LOG_TABLE.c.id)
)
_OUTCOME_COLUMNS = (
    "outcome",
    "reason",
    "detail",
    "signature_valid",
    "processed_at",
    "kind",
    "event_id",
    "out_trade_no",
    "out_refund_no",
    "transaction_id",
    "amount_fen",
    "order_id",
)
_LOG_FINISH = (
    update(ChannelNotification.__table__)  # type: ignore[arg-type]
    .where(
        ChannelNotification.__table__.c.id == bindparam("w_id"),
        ChannelNotification.__table__.c.outcome == NotificationOutcome.RECEIVED.value,
    )
    .values({name: bindparam(f"v_{name}") for name in _OUTCOME_COLUMNS})
)


def _apply(
    db: Database,
    channel: PaymentChannel,
    channel_name: str,
    log_id: int,
    note: VerifiedNotification,
) -> Reply:
    actor = f"gateway:{channel_name}"
    trade, refund = note.trade, note.refund
    ids: dict[str, Any] = {
        "kind": note.kind,
        "signature_valid": True,
        "event_id": (note.event_id or None) and note.event_id[:64],
        "out_trade_no": (trade.out_trade_no if trade else refund.out_trade_no if refund else None),
        "out_refund_no": refund.out_refund_no if refund else None,
        "transaction_id": trade.transaction_id if trade else None,
        "amount_fen": refund.amount_fen if refund else trade.amount_fen if trade else None,
    }

    def work(session: Session) -> Applied | RefundApplied:
        result: Applied | RefundApplied
        if note.kind == "payment" and trade is not None:
            result = apply_payment(session, trade=trade, channel=channel_name, actor=actor)
        elif note.kind == "refund" and refund is not None:
            result = apply_refund_answer(session, answer=refund, actor=actor)
        elif note.kind == "closed" and trade is not None:
            result = apply_closed(session, trade=trade, channel=channel_name, actor=actor)
        else:
            result = Applied(NotificationOutcome.IGNORED, note.kind)
        if result.outcome == NotificationOutcome.REJECTED and (
            note.kind == "refund" or result.reason == "unknown_order"
        ):
            # The settlement audits refusals about an order of ours; these it cannot.
            _audit_refusal(session, actor, log_id, result.reason)
        _finish(
            session,
            log_id,
            outcome=result.outcome,
            reason=result.reason,
            detail=getattr(result, "detail", None),
            order_id=result.order_id,
            **ids,
        )
        return result

    try:
        result = in_transaction(db, work)
    except Exception:
        # Not swallowed: logged with its traceback, the log row says so, and the gateway gets
        # a failure reply so it retries (PROTOCOLS.md §1.5, §5.5); the reconciler heals too.
        log.exception("notification processing failed", extra={"log_id": log_id})
        _finish_alone(
            db,
            log_id,
            outcome=NotificationOutcome.RECEIVED,
            reason="processing_error",
            detail=None,
            signature_valid=True,
        )
        return channel.failure_reply("processing_error")
    if result.outcome == NotificationOutcome.REJECTED:
        return channel.failure_reply(result.reason or "rejected")
    return channel.success_reply()


def in_transaction(db: Database, work: Callable[[Session], T]) -> T:
    """Run `work` and commit; on a lost race roll back and run it again (fresh state)."""
    for attempt in range(1, ATTEMPTS + 1):
        session = db.session()
        try:
            result = work(session)
            session.commit()
            return result
        except (LostRace, IntegrityError, OperationalError) as exc:
            # OperationalError: a PostgreSQL deadlock/serialization failure or SQLite busy.
            session.rollback()
            if attempt == ATTEMPTS or (isinstance(exc, OperationalError) and not _transient(exc)):
                raise
            log.info("lost a race, applying again", extra={"attempt": attempt})
    raise AssertionError("unreachable")


def _transient(exc: OperationalError) -> bool:
    """Worth another go: a deadlock, a serialization failure, SQLite busy, or a connection the
    server dropped (the pool has been invalidated and the next attempt reconnects; if the
    drop came during COMMIT and the commit did land, the retry finds the order paid and takes
    the duplicate path, changing nothing)."""
    if exc.connection_invalidated:
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in ("40001", "40P01") or "database is locked" in str(exc)


def _finish(
    session: Session,
    log_id: int,
    *,
    outcome: str,
    reason: str | None,
    detail: str | None,
    signature_valid: bool | None = None,
    **values: object,
) -> None:
    params: dict[str, Any] = {f"v_{name}": values.get(name) for name in _OUTCOME_COLUMNS}
    params.update(
        w_id=log_id,
        v_outcome=str(outcome),
        v_reason=reason,
        v_detail=(detail or None) and str(detail)[:2000],
        v_signature_valid=signature_valid,
        v_processed_at=utcnow(),
    )
    session.connection().execute(_LOG_FINISH, params)


def _audit_refusal(session: Session, actor: str, log_id: int, reason: str | None) -> None:
    """Every refused notification is in the audit log too (DOMAIN.md: every refusal)."""
    audit(
        session,
        actor=actor,
        action="payments.notification.refused",
        subject=f"notification:{log_id}",
        outcome="refused",
        detail={"reason": reason},
    )


def _finish_alone(
    db: Database,
    log_id: int,
    *,
    outcome: str,
    reason: str,
    detail: str | None,
    signature_valid: bool | None,
    refused_by: str | None = None,
) -> None:
    session = db.session()
    session.rollback()
    if refused_by is not None:
        _audit_refusal(session, refused_by, log_id, reason)
    _finish(
        session,
        log_id,
        outcome=outcome,
        reason=reason,
        detail=detail,
        signature_valid=signature_valid,
    )
    session.commit()


@dataclass
class SweepReport:
    swept: int = 0
    applied: int = 0
    superseded: int = 0
    rejected: int = 0
    failed: int = 0


def sweep_unfinished(
    db: Database, settings: Config, *, older_than: timedelta = SWEEP_AFTER, limit: int = 500
) -> SweepReport:
    """End every callback-log row left `received` past `older_than` (the payments worker).

    Such a row was stored (step 1) and its request died before the outcome was written — the
    database dropped, the process was killed. Its stored body and headers are verified and
    applied again exactly as on arrival (the freshness of a v3 signature judged as of its
    `received_at`); applying is idempotent, so a payment the gateway's retry already booked
    changes nothing. The row then ends in a final outcome:
    - `superseded` (detail `#<id>`) when a later row of the same notification applied it;
    - whatever applying gives otherwise (`applied` when no retry ever came: the sweep healed
      it; `duplicate`, `ignored`, `rejected`).
    A row whose processing fails again stays `received` with reason `processing_error` and is
    tried again next round (logged with its traceback).
    """
    report = SweepReport()
    session = db.session()
    table = ChannelNotification.__table__
    rows = session.execute(
        select(table.c.id, table.c.channel, table.c.path, table.c.headers)
        .add_columns(table.c.raw_body, table.c.received_at)
        .where(
            table.c.outcome == NotificationOutcome.RECEIVED.value,
            table.c.received_at < clock.now() - older_than,
        )
        .order_by(table.c.id)
        .limit(limit)
    ).all()
    session.commit()
    for row in rows:
        report.swept += 1
        channel = get_channel(settings, row.channel)
        try:
            verified = channel.parse_notification(
                row.headers or {},
                bytes(row.raw_body),
                row.path,
                received_at=clock.unpinned(row.received_at),
            )
        except NotificationRejected as exc:
            _finish_alone(
                db,
                row.id,
                outcome=NotificationOutcome.REJECTED,
                reason=exc.reason,
                detail=exc.detail,
                signature_valid=False if exc.reason in SIGNATURE_REASONS else None,
                refused_by=f"gateway:{row.channel}",
            )
            report.rejected += 1
            continue
        _apply(db, channel, row.channel, row.id, verified)
        outcome = _supersede(db, row.id)
        if outcome == NotificationOutcome.SUPERSEDED:
            report.superseded += 1
        elif outcome == NotificationOutcome.RECEIVED:
            report.failed += 1
        elif outcome == NotificationOutcome.REJECTED:
            report.rejected += 1
        else:
            report.applied += 1
    if report.swept:
        log.warning("callback log: unfinished rows swept", extra=vars(report))
    return report


def _supersede(db: Database, log_id: int) -> str:
    """A swept row found to repeat one a later row applied is marked `superseded` by it."""
    session = db.session()
    table = ChannelNotification.__table__
    row = session.execute(
        select(table.c.outcome, table.c.kind, table.c.out_trade_no, table.c.out_refund_no).where(
            table.c.id == log_id
        )
    ).one()
    if row.outcome != NotificationOutcome.DUPLICATE.value:
        session.commit()
        return str(row.outcome)
    applied_by = session.scalar(
        select(table.c.id)
        .where(
            table.c.id != log_id,
            table.c.outcome == NotificationOutcome.APPLIED.value,
            table.c.kind == row.kind,
            table.c.out_trade_no == row.out_trade_no,
            table.c.out_refund_no.is_(None)
            if row.out_refund_no is None
            else table.c.out_refund_no == row.out_refund_no,
        )
        .order_by(table.c.id)
        .limit(1)
    )
    if applied_by is None:
        session.commit()
        return str(row.outcome)
    session.execute(
        update(table)  # type: ignore[arg-type]
        .where(table.c.id == log_id)
        .values(outcome=NotificationOutcome.SUPERSEDED.value, detail=f"#{applied_by}")
    )
    session.commit()
    return NotificationOutcome.SUPERSEDED.value
