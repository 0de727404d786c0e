"""Outbox services: enqueue a record, acknowledgements, listings, replay, dead letters.

Plain keyword-only functions taking the session; they flush, never commit (STYLE.md 4). The
relay's own transactions live in `relay.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from api.clock import BEIJING
from api.db import utcnow
from api.payments.outbox.models import (
    ACK_BOOKED,
    ACK_REJECTED,
    DEAD,
    PENDING,
    SENT,
    OutboxMessage,
    TaxAcknowledgement,
)
from api.payments.outbox.record import (
    PAID,
    REVERSED,
    SCHEMA_VERSION,
    ContributionEvent,
    RecordInvalid,
    build_record,
    encode,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a record is retried before it is dead, and how long between tries.

    Counted per record: failed publishes (the broker refused or returned it) plus the tax side's
    rejections. A broker that is down is not the record's fault and costs no attempt.
    """

    max_attempts: int = 5
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        seconds = min(self.cap_seconds, self.base_seconds * (2 ** max(0, attempts - 1)))
        return timedelta(seconds=seconds)


DEFAULT_RETRY = RetryPolicy()


# --- enqueue -------------------------------------------------------------------------------


def enqueue_contribution_event(session: Session, event: ContributionEvent) -> OutboxMessage:
    """Add the record of `event` to the caller's transaction (flush only, never commit).

    Payments-core calls this in the transaction that creates or reverses the contribution, so
    the record exists exactly when the contribution does (transactional outbox, DESIGN.md "The
    tax-side reconciliation queue"). A second record for the same (contribution, event) is
    refused by a unique constraint at flush: re-enqueueing is a bug, re-sending is the relay's.
    """
    now = utcnow()
    message = OutboxMessage(**_row(event, _reverses(session, [event])[0], now))
    session.add(message)
    session.flush()
    return message


def enqueue_contribution_events(session: Session, events: Sequence[ContributionEvent]) -> list[str]:
    """The records of several events in ONE multi-row INSERT; returns their ids, in order.

    Same guarantees as `enqueue_contribution_event` (each record built and checked against the
    schema, caller's transaction, unique per (contribution, event)) without an ORM object and
    a flush per record: the payment notification books a household's contributions at once
    (bench/notify_throughput.py). Pending ORM changes are flushed first, as the one-record
    version's flush would.
    """
    if not events:
        return []
    now = utcnow()
    rows = [
        _row(event, reverses, now)
        for event, reverses in zip(events, _reverses(session, events), strict=True)
    ]
    session.flush()
    # executemany (psycopg pipelines it: one round trip), not `api.db.unnest_insert`: as an
    # array element every `"` of a JSON body is escaped by psycopg in Python, which cost more
    # than the statements it saves.
    session.connection().execute(_INSERT, rows)
    return [row["id"] for row in rows]


_INSERT = insert(OutboxMessage.__table__)  # type: ignore[arg-type]


def _reverses(session: Session, events: Sequence[ContributionEvent]) -> list[str | None]:
    """For each event, the record it reverses: given, or (a reversal) its paid record."""
    missing = [
        e.contribution_id for e in events if e.event == REVERSED and e.reverses_message_id is None
    ]
    found: dict[int, str] = {}
    if missing:
        query = select(OutboxMessage.contribution_id, OutboxMessage.id).where(
            OutboxMessage.contribution_id.in_(missing), OutboxMessage.event == PAID
        )
        found = {cid: record_id for cid, record_id in session.execute(query)}
    answer: list[str | None] = []
    for event in events:
        reverses = event.reverses_message_id
        if event.event == REVERSED and reverses is None:
            reverses = found.get(event.contribution_id)
            if reverses is None:
                raise RecordInvalid(
                    [f"reverses: no paid record for contribution {event.contribution_id}"]
                )
        answer.append(reverses)
    return answer


def _row(event: ContributionEvent, reverses: str | None, now: datetime) -> dict[str, Any]:
    """The outbox row of `event`: its validated record plus the columns the relay reads."""
    record = build_record(event, occurred_at=now, reverses=reverses)
    return {
        "id": record["id"],
        "event": event.event,
        "contribution_id": event.contribution_id,
        "schema_version": SCHEMA_VERSION,
        "body": encode(record).decode("utf-8"),
        "year": event.year,
        "insurance": event.insurance,
        "town_code": event.town_code,
        "paid_at": event.paid_at,
        "created_at": now,
        "status": PENDING,
        "attempts": 0,
        "deliveries": 0,
        "next_attempt_at": now,
    }


# --- delivery status ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordDelivery:
    record_id: str
    event: str
    status: str  # pending | sent | dead
    attempts: int
    sent_at: datetime | None
    acknowledged_at: datetime | None
    ack_status: str | None  # booked | rejected | None
    last_error: str | None


@dataclass(frozen=True)
class DeliveryStatus:
    """Where the tax records of one contribution stand (paid record, then any reversal)."""

    contribution_id: int
    records: tuple[RecordDelivery, ...]

    @property
    def queued(self) -> bool:
        return bool(self.records)

    @property
    def sent(self) -> bool:
        return bool(self.records) and all(r.status == SENT for r in self.records)

    @property
    def acknowledged(self) -> bool:
        return bool(self.records) and all(
            r.acknowledged_at is not None and r.ack_status == ACK_BOOKED for r in self.records
        )


def delivery_status(session: Session, contribution_ids: Iterable[int]) -> dict[int, DeliveryStatus]:
    """Per contribution: its records and whether each was sent and acknowledged.

    Every id asked for is in the answer; a contribution with no record has `records == ()`.
    """
    ids = sorted(set(contribution_ids))
    found: dict[int, list[RecordDelivery]] = {cid: [] for cid in ids}
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.contribution_id.in_(chunk))
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
        )
        for m in rows:
            found[m.contribution_id].append(_delivery(m))
    return {cid: DeliveryStatus(cid, tuple(recs)) for cid, recs in found.items()}


def _delivery(m: OutboxMessage) -> RecordDelivery:
    return RecordDelivery(
        record_id=m.id,
        event=m.event,
        status=m.status,
        attempts=m.attempts,
        sent_at=m.sent_at,
        acknowledged_at=m.acknowledged_at,
        ack_status=m.ack_status,
        last_error=m.last_error,
    )


# --- acknowledgements -----------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledgement:
    """One acknowledgement from the tax side (booked, or rejected with a reason)."""

    record_id: str
    status: str  # booked | rejected
    duplicate: bool = False
    reason: str | None = None
    tax_ref: str | None = None
    booked_at: datetime | None = None


def record_acknowledgements(
    session: Session,
    acks: Sequence[Acknowledgement],
    *,
    received_from: str,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> list[dict[str, str]]:
    """Apply the tax side's acknowledgements; idempotent per (record, status).

    booked → the record is acknowledged (a dead record the tax side booked after all becomes
    sent again). rejected → one attempt is spent and the record goes back to pending after the
    backoff, or to dead once `policy.max_attempts` is reached: the tax side's rejection of a
    record (e.g. a person not yet linked, 信息关联) may be cured by time; a record rejected
    every time is listed, never dropped. Returns one outcome per acknowledgement, in order.
    """
    outcomes: list[dict[str, str]] = []
    ids = {a.record_id for a in acks}
    messages = {
        m.id: m
        for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(ids)).with_for_update()
        )
    }
    now = utcnow()
    for ack in acks:
        message = messages.get(ack.record_id)
        if message is None:
            outcomes.append({"record_id": ack.record_id, "outcome": "unknown_record"})
            continue
        session.add(
            TaxAcknowledgement(
                record_id=message.id,
                status=ack.status,
                duplicate=ack.duplicate,
                reason=ack.reason,
                tax_ref=ack.tax_ref,
                booked_at=ack.booked_at,
                received_at=now,
                received_from=received_from,
            )
        )
        if ack.status == ACK_BOOKED:
            outcome = "already_acknowledged" if message.acknowledged_at else "acknowledged"
            if message.acknowledged_at is None:
                message.acknowledged_at = now
            if message.first_acknowledged_at is None:
                message.first_acknowledged_at = now
            message.ack_status = ACK_BOOKED
            message.ack_detail = ack.tax_ref
            if message.status == DEAD:
                message.status = SENT
                message.dead_at = None
        elif message.ack_status == ACK_BOOKED and message.acknowledged_at is not None:
            # The tax side booked it already; a late rejection of an older delivery is moot.
            outcome = "ignored_already_booked"
        else:
            message.attempts += 1
            message.ack_status = ACK_REJECTED
            message.ack_detail = (ack.reason or "")[:500]
            message.last_error = f"rejected by tax side: {ack.reason or ''}"[:1000]
            if message.attempts >= policy.max_attempts:
                message.status = DEAD
                message.dead_at = now
                outcome = "dead"
                log.warning(
                    "tax record dead after rejections",
                    extra={"record_id": message.id, "attempts": message.attempts},
                )
            else:
                message.status = PENDING
                message.next_attempt_at = now + policy.delay(message.attempts)
                outcome = "retry_scheduled"
        outcomes.append({"record_id": ack.record_id, "outcome": outcome})
    session.flush()
    return outcomes


# --- listings -------------------------------------------------------------------------------


def list_records(
    session: Session,
    *,
    status: str | None = None,
    older_than: timedelta | None = None,
    town_code: str | None = None,
    contribution_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[OutboxMessage], int]:
    """Records by state, oldest first, with the total count.

    `status`: pending | sent | dead | unacknowledged (sent, no booked acknowledgement yet);
    `older_than`: only those whose current state began longer ago than that (sent_at for
    sent/unacknowledged, dead_at for dead, created_at otherwise) — the monitor's threshold.
    """
    query = select(OutboxMessage)
    since_column: Any = OutboxMessage.created_at
    if status == "unacknowledged":
        query = query.where(OutboxMessage.status == SENT, OutboxMessage.acknowledged_at.is_(None))
        since_column = OutboxMessage.sent_at
    elif status is not None:
        query = query.where(OutboxMessage.status == status)
        if status == SENT:
            since_column = OutboxMessage.sent_at
        elif status == DEAD:
            since_column = OutboxMessage.dead_at
    if older_than is not None:
        query = query.where(since_column <= utcnow() - older_than)
    if town_code:
        query = query.where(OutboxMessage.town_code == town_code)
    if contribution_id is not None:
        query = query.where(OutboxMessage.contribution_id == contribution_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(since_column, OutboxMessage.id).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def counts_by_state(session: Session) -> dict[str, int]:
    """pending / sent / dead / unacknowledged counts, for the CLI and the monitor."""
    counts = {s: 0 for s in (PENDING, SENT, DEAD)}
    for status, n in session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    ):
        counts[status] = n
    counts["unacknowledged"] = (
        session.scalar(
            select(func.count()).where(
                OutboxMessage.status == SENT, OutboxMessage.acknowledged_at.is_(None)
            )
        )
        or 0
    )
    return counts


# --- replay and dead letters ----------------------------------------------------------------


def _beijing_day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), BEIJING)


def replay(
    session: Session,
    *,
    since: date,
    until: date | None = None,
    town_code: str | None = None,
) -> int:
    """Mark the records written from `since` to `until` (Beijing dates, inclusive) for
    re-publishing: same record ids, new deliveries; the tax side de-duplicates by id.

    For when the tax side lost data: the acknowledgement is cleared (the tax side must book
    and acknowledge again; `first_acknowledged_at` and the acknowledgement log keep history)
    and spent attempts are forgiven. Returns how many records were marked.
    """
    now = utcnow()
    conditions: list[Any] = [OutboxMessage.created_at >= _beijing_day_start(since)]
    if until is not None:
        conditions.append(OutboxMessage.created_at < _beijing_day_start(until + timedelta(days=1)))
    if town_code:
        conditions.append(OutboxMessage.town_code == town_code)
    result = session.execute(
        update(OutboxMessage)
        .where(*conditions)
        .values(
            status=PENDING,
            next_attempt_at=now,
            attempts=0,
            dead_at=None,
            acknowledged_at=None,
            ack_status=None,
            replayed_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def retry_dead(session: Session, *, record_ids: Sequence[str] | None = None) -> int:
    """Give dead records a fresh set of attempts (all of them, or those named)."""
    query = update(OutboxMessage).where(OutboxMessage.status == DEAD)
    if record_ids:
        query = query.where(OutboxMessage.id.in_(list(record_ids)))
    result = session.execute(
        query.values(
            status=PENDING, attempts=0, dead_at=None, next_attempt_at=utcnow()
        ).execution_options(synchronize_session=False)
    )
    session.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def acknowledged_for_export(
    session: Session,
    *,
    insurance: str,
    town_code: str | None,
    date_from: date,
    date_to: date,
) -> list[OutboxMessage]:
    """Records the tax side has booked, paid within the Beijing dates (inclusive)."""
    query = select(OutboxMessage).where(
        OutboxMessage.insurance == insurance,
        OutboxMessage.first_acknowledged_at.is_not(None),
        OutboxMessage.paid_at >= _beijing_day_start(date_from),
        OutboxMessage.paid_at < _beijing_day_start(date_to + timedelta(days=1)),
    )
    if town_code:
        query = query.where(OutboxMessage.town_code == town_code)
    return list(session.scalars(query.order_by(OutboxMessage.paid_at, OutboxMessage.id)))


__all__ = [
    "DEFAULT_RETRY",
    "Acknowledgement",
    "DeliveryStatus",
    "RecordDelivery",
    "RetryPolicy",
    "acknowledged_for_export",
    "counts_by_state",
    "delivery_status",
    "enqueue_contribution_event",
    "enqueue_contribution_events",
    "list_records",
    "record_acknowledgements",
    "replay",
    "retry_dead",
]
