"""The relay 转发器: publishes pending outbox records and marks them sent once confirmed.

One batch is one unit of work (`Database.job()`, session removed after it):

  PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED → publish the batch (confirms) → one UPDATE for
  the confirmed ids → COMMIT. The row locks are held while publishing, so relays running at
  once each take different rows and none publishes a row another is publishing.
  SQLite (embedded default, ONE relay only): read the batch and end that transaction (holding
  SQLite's single write lock across a publish would stall every payment) → publish → mark sent
  in a second transaction. Two relays on SQLite would send rows twice — harmless for the
  de-duplicating consumer, but wasteful: run one.

Whatever kills the relay, a row is marked sent only after the broker confirmed it; a crash
between the confirm and the commit leaves it pending, and it is sent again (at-least-once; the
tax side de-duplicates by record id). A broker that is down costs no attempt: the relay backs
off (exponential, capped) and retries the same rows. A message the broker refuses (nack,
unroutable) spends one attempt; after `RetryPolicy.max_attempts` it is dead (listed by
`flask outbox dead` and `GET /api/v1/tax/records?status=dead`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import JSON, Integer, String, insert, literal, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.db import Database, UTCDateTime, utcnow
from api.payments.outbox.models import DEAD, PENDING, SENT, OutboxMessage, QueueMessage
from api.payments.outbox.service import DEFAULT_RETRY, RetryPolicy
from api.payments.outbox.transports import (
    OutgoingMessage,
    Publisher,
    PublishResult,
    TransportUnavailable,
)
from api.payments.outbox.transports.dbqueue import DatabaseQueuePublisher

log = logging.getLogger(__name__)

AfterPublishHook = Callable[[PublishResult], None]


@dataclass
class RelaySettings:
    batch: int = 200
    retry: RetryPolicy = DEFAULT_RETRY
    idle_seconds: float = 1.0  # pause when nothing is due
    backoff_base_seconds: float = 1.0  # broker down: 1, 2, 4, … seconds
    backoff_cap_seconds: float = 60.0


@dataclass
class BatchOutcome:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    unavailable: str | None = None


@dataclass
class RelayTotals:
    batches: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    outages: int = 0
    last_error: str | None = field(default=None)

    def add(self, outcome: BatchOutcome) -> None:
        self.batches += 1
        self.sent += outcome.sent
        self.failed += outcome.failed
        self.dead += outcome.dead
        if outcome.unavailable:
            self.outages += 1
            self.last_error = outcome.unavailable


def _relaxed_commit(session: Session) -> None:
    """PostgreSQL: do not wait for the WAL flush when marking rows sent. A mark lost in a
    database crash only means the rows are sent again, which at-least-once delivery already
    allows (the consumer de-duplicates); the payment's own transaction is not affected."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def _due(session: Session, batch: int, *, lock: bool) -> list[tuple[str, str, int, str, int]]:
    query = (
        select(
            OutboxMessage.id,
            OutboxMessage.body,
            OutboxMessage.schema_version,
            OutboxMessage.event,
            OutboxMessage.attempts,
        )
        .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= utcnow())
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
        .limit(batch)
    )
    if lock:
        query = query.with_for_update(skip_locked=True)
    return [tuple(r) for r in session.execute(query).all()]  # type: ignore[misc]


def _publish(
    publisher: Publisher, rows: list[tuple[str, str, int, str, int]]
) -> tuple[PublishResult, str | None]:
    messages = [
        OutgoingMessage(
            message_id=record_id,
            body=body.encode("utf-8"),
            headers={"schema_version": version, "event": event},
        )
        for record_id, body, version, event, _attempts in rows
    ]
    try:
        return publisher.publish(messages), None
    except TransportUnavailable as exc:
        return exc.partial, str(exc)


def _settle(
    session: Session,
    rows: list[tuple[str, str, int, str, int]],
    result: PublishResult,
    retry: RetryPolicy,
    outcome: BatchOutcome,
) -> None:
    now = utcnow()
    if result.confirmed:
        # One UPDATE for the whole confirmed batch (bench/relay.py: this is what keeps the
        # relay near the raw publish loop).
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(result.confirmed), OutboxMessage.status == PENDING)
            .values(
                status=SENT,
                sent_at=now,
                deliveries=OutboxMessage.deliveries + 1,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )
        outcome.sent = len(result.confirmed)
    attempts_by_id = {r[0]: r[4] for r in rows}
    for record_id, reason in result.failed.items():
        attempts = attempts_by_id.get(record_id, 0) + 1
        dead = attempts >= retry.max_attempts
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == record_id)
            .values(
                attempts=attempts,
                last_error=reason[:1000],
                status=DEAD if dead else PENDING,
                dead_at=now if dead else None,
                next_attempt_at=now + retry.delay(attempts),
            )
            .execution_options(synchronize_session=False)
        )
        outcome.failed += 1
        if dead:
            outcome.dead += 1
            log.warning("tax record dead: broker refused it", extra={"record_id": record_id})


def _relay_batch_same_database(
    database: Database,
    publisher: DatabaseQueuePublisher,
    *,
    batch: int,
    after_publish: AfterPublishHook | None,
) -> BatchOutcome:
    """The embedded queue in the outbox's own database: publish and mark sent in ONE
    transaction (INSERT … SELECT, no row leaves the database), so a crash can neither lose a
    record nor send it twice. Same SKIP LOCKED claim on PostgreSQL."""
    outcome = BatchOutcome()
    t = OutboxMessage
    with database.job() as session:
        query = (
            select(t.id, t.schema_version, t.event)
            .where(t.status == PENDING, t.next_attempt_at <= utcnow())
            .order_by(t.created_at, t.id)
            .limit(batch)
        )
        if database.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
            _relaxed_commit(session)
        rows = session.execute(query).all()
        outcome.claimed = len(rows)
        if not rows:
            return outcome
        groups: dict[tuple[int, str], list[str]] = {}
        for record_id, version, event in rows:
            groups.setdefault((version, event), []).append(record_id)
        now = utcnow()
        q = QueueMessage
        for (version, event), ids in groups.items():
            headers = literal({"schema_version": version, "event": event}, JSON)
            session.execute(
                insert(q).from_select(
                    [
                        "topic",
                        "message_id",
                        "headers",
                        "body",
                        "enqueued_at",
                        "visible_at",
                        "delivery_count",
                    ],
                    select(
                        literal(publisher.queue, String),
                        t.id,
                        headers,
                        t.body,
                        literal(now, UTCDateTime()),
                        literal(now, UTCDateTime()),
                        literal(0, Integer),
                    )
                    .where(t.id.in_(ids))
                    .order_by(t.created_at, t.id),
                )
            )
        result = PublishResult(confirmed=[r[0] for r in rows])
        if after_publish is not None:
            after_publish(result)
        _settle(session, [], result, DEFAULT_RETRY, outcome)
    return outcome


def relay_batch(
    database: Database,
    publisher: Publisher,
    *,
    batch: int = 200,
    retry: RetryPolicy = DEFAULT_RETRY,
    after_publish: AfterPublishHook | None = None,
) -> BatchOutcome:
    """Publish one batch of due records; see the module docstring for the transactions.

    `after_publish` runs between the broker's confirms and the commit that marks rows sent
    (tests inject a crash there).
    """
    if isinstance(publisher, DatabaseQueuePublisher) and publisher.engine is database.engine:
        return _relay_batch_same_database(
            database, publisher, batch=batch, after_publish=after_publish
        )
    outcome = BatchOutcome()
    locking = database.engine.dialect.name == "postgresql"
    if locking:
        with database.job() as session:
            _relaxed_commit(session)
            rows = _due(session, batch, lock=True)
            outcome.claimed = len(rows)
            if not rows:
                return outcome
            result, outcome.unavailable = _publish(publisher, rows)
            if after_publish is not None:
                after_publish(result)
            _settle(session, rows, result, retry, outcome)
        return outcome
    with database.job() as session:
        rows = _due(session, batch, lock=False)
    outcome.claimed = len(rows)
    if not rows:
        return outcome
    result, outcome.unavailable = _publish(publisher, rows)
    if after_publish is not None:
        after_publish(result)
    with database.job() as session:
        _settle(session, rows, result, retry, outcome)
    return outcome


def run_relay(
    database: Database,
    publisher: Publisher,
    *,
    settings: RelaySettings | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
    after_publish: AfterPublishHook | None = None,
) -> RelayTotals:
    """The worker loop. `once`: publish everything due, then return (cron, tests).

    Stops between batches when `stop` is set (SIGTERM), never halfway through one.
    """
    settings = settings or RelaySettings()
    stop = stop or threading.Event()
    totals = RelayTotals()
    backoff = settings.backoff_base_seconds
    while not stop.is_set():
        try:
            outcome = relay_batch(
                database,
                publisher,
                batch=settings.batch,
                retry=settings.retry,
                after_publish=after_publish,
            )
        except OperationalError as exc:
            # The outbox database itself is unreachable: same treatment as a broker outage.
            if once:
                raise
            outcome = BatchOutcome(unavailable=f"database: {type(exc).__name__}")
        totals.add(outcome)
        if outcome.unavailable:
            log.warning(
                "relay: queue unavailable, backing off",
                extra={"backoff_seconds": backoff, "error": outcome.unavailable[:300]},
            )
            if once:
                return totals
            stop.wait(backoff)
            backoff = min(settings.backoff_cap_seconds, backoff * 2)
            continue
        backoff = settings.backoff_base_seconds
        if outcome.sent or outcome.failed:
            log.info(
                "relay: batch published",
                extra={"sent": outcome.sent, "failed": outcome.failed, "dead": outcome.dead},
            )
        if outcome.claimed < settings.batch:
            if once:
                return totals
            stop.wait(settings.idle_seconds)
    return totals
