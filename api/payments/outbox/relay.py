"""The relay 转发器: publishes pending outbox records and marks them sent once confirmed.

One batch is one unit of work (`Database.job()`, session removed after it):

  PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED → publish the batch (confirms) → one UPDATE for
  the confirmed ids → COMMIT. The row locks are held while publishing, so relays running at
  once each take different rows and none publishes a row another is publishing. Batches are
  pipelined (`_pipelined`, `RelaySettings.overlap`): a helper thread commits the previous
  batch and claims the next one, each in its own transaction, while this one is published.
  SQLite (embedded default, ONE relay only): read the batch and end that transaction (holding
  SQLite's single write lock across a publish would stall every payment) → publish → mark sent
  in a second transaction. Two relays on SQLite would send rows twice — harmless for the
  de-duplicating consumer, but wasteful: run one.
  Database queue in the outbox's own database (`QUEUE_URL` empty): no row leaves the
  database. Queue insert and mark-sent share ONE transaction (so a crash can neither lose a
  record nor queue it twice), and up to `RelaySettings.transaction_batches` batches share it.
  PostgreSQL does claim (SKIP LOCKED), mark and insert in one statement; SQLite in two.

Whatever kills the relay, a row is marked sent only after the broker confirmed it; a crash
between the confirm and the commit leaves it pending, and it is sent again (at-least-once; the
tax side de-duplicates by record id). A broker that is down costs no attempt: the relay backs
off (exponential, capped) and retries the same rows. A message the broker refuses (nack,
unroutable) spends one attempt; after `RetryPolicy.max_attempts` it is dead (listed by
`flask outbox dead` and `GET /api/v1/tax/records?status=dead`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    Insert,
    Integer,
    Select,
    String,
    Table,
    Update,
    any_,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
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
    # Database queue in the outbox's own database: batches per transaction. Each one holds
    # SQLite's single write lock a few milliseconds longer (payments wait for it), so keep
    # it small.
    transaction_batches: int = 4
    # PostgreSQL with a broker: do the database work of one batch while the next one is
    # being published (`_pipelined`). Off: strictly one batch after the other.
    overlap: bool = True


@dataclass
class BatchOutcome:
    batches: int = 1  # batches in this transaction (the database queue may take several)
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
        self.batches += outcome.batches
        self.sent += outcome.sent
        self.failed += outcome.failed
        self.dead += outcome.dead
        if outcome.unavailable:
            self.outages += 1
            self.last_error = outcome.unavailable


class RelayInconsistency(RuntimeError):
    """The queue insert and the mark-sent disagreed on the batch: roll back, send nothing."""


Row = tuple[str, str, int, str, int]  # id, body, schema_version, event, attempts

# Core tables, not ORM entities: the relay's statements skip the ORM's bulk-update and
# entity-loading machinery (about a third of the relay's Python time per batch, bench/relay.py).
_OUTBOX = cast(Table, OutboxMessage.__table__)
_QUEUE = cast(Table, QueueMessage.__table__)
_NOW = bindparam("now", type_=UTCDateTime())
_BATCH = bindparam("batch", type_=Integer)
_QUEUE_COLUMNS = [
    "topic",
    "message_id",
    "headers",
    "body",
    "enqueued_at",
    "visible_at",
    "delivery_count",
]


def _due(*columns: Any) -> Select[Any]:
    """Due rows in publishing order (served by the partial index `ix_outbox_messages_due`)."""
    o = _OUTBOX
    return (
        select(*columns)
        .where(o.c.status == PENDING, o.c.next_attempt_at <= _NOW)
        .order_by(o.c.created_at, o.c.id)
        .limit(_BATCH)
    )


_o = _OUTBOX.c
_CLAIM = _due(_o.id, _o.body, _o.schema_version, _o.event, _o.attempts)
_CLAIM_LOCKED = _CLAIM.with_for_update(skip_locked=True)
_MARK_SENT_VALUES: dict[str, Any] = {
    "status": SENT,
    "sent_at": _NOW,
    "deliveries": _o.deliveries + 1,
    "last_error": None,
}
# PostgreSQL: the confirmed ids as ONE array parameter (`id = ANY(:ids)`): no 200-placeholder
# statement to render, split and plan for every batch.
_MARK_SENT_ARRAY = (
    update(_OUTBOX)
    .where(_o.id == any_(bindparam("ids", type_=ARRAY(String))), _o.status == PENDING)
    .values(_MARK_SENT_VALUES)
)
_MARK_SENT_LIST = (
    update(_OUTBOX)
    .where(_o.id.in_(bindparam("ids", expanding=True)), _o.status == PENDING)
    .values(_MARK_SENT_VALUES)
)


def _enqueue_due_postgresql() -> Insert:
    """The database queue on PostgreSQL: claim, mark sent and enqueue in ONE statement.

    `claimed` takes the due rows with `FOR UPDATE SKIP LOCKED` (MATERIALIZED: evaluated exactly
    once, never inlined and re-run), `sent` marks exactly those rows, and the INSERT copies
    what `sent` returned into the queue in publishing order, so queue order = outbox order.
    All in the relay's transaction: committed together or not at all.
    """
    claimed = _due(_o.id).with_for_update(skip_locked=True).cte("claimed")
    claimed = claimed.prefix_with("MATERIALIZED")
    sent = (
        update(_OUTBOX)
        .where(_o.id == any_(func.array(select(claimed.c.id).scalar_subquery())))
        .where(_o.status == PENDING)
        .values(_MARK_SENT_VALUES)
        .returning(_o.id, _o.body, _o.schema_version, _o.event, _o.created_at)
        .cte("sent")
    )
    headers = func.json_build_object("schema_version", sent.c.schema_version, "event", sent.c.event)
    rows = select(
        bindparam("topic", type_=String),
        sent.c.id,
        headers,
        sent.c.body,
        _NOW,
        _NOW,
        literal(0, Integer),
    ).order_by(sent.c.created_at, sent.c.id)
    return insert(_QUEUE).from_select(_QUEUE_COLUMNS, rows).returning(_QUEUE.c.message_id)


def _enqueue_due_sqlite() -> tuple[Insert, Update]:
    """The database queue on SQLite: copy the due rows into the queue, then mark those rows.

    Two statements, one transaction. The INSERT returns the queue ids it took; SQLite's single
    write lock (taken at BEGIN IMMEDIATE) means no one else wrote queue rows in between, so the
    queue rows `lo..hi` are exactly this batch, and the UPDATE marks their records by primary
    key instead of searching and sorting the due rows a second time (half the UPDATE's cost).
    The relay checks that both counts agree anyway.
    """
    headers = func.json_object("schema_version", _o.schema_version, "event", _o.event)
    rows = _due(
        bindparam("topic", type_=String),
        _o.id,
        headers,
        _o.body,
        _NOW,
        _NOW,
        literal(0, Integer),
    )
    q = _QUEUE.c
    enqueue = insert(_QUEUE).from_select(_QUEUE_COLUMNS, rows).returning(q.id, q.message_id)
    this_batch = select(q.message_id).where(q.id.between(bindparam("lo"), bindparam("hi")))
    mark = (
        update(_OUTBOX).where(_o.id.in_(this_batch), _o.status == PENDING).values(_MARK_SENT_VALUES)
    )
    return enqueue, mark


_ENQUEUE_DUE_POSTGRESQL = _enqueue_due_postgresql()
_ENQUEUE_DUE_SQLITE, _MARK_DUE_SENT_SQLITE = _enqueue_due_sqlite()


def _relaxed_commit(session: Session) -> None:
    """PostgreSQL: do not wait for the WAL flush when marking rows sent. A mark lost in a
    database crash only means the rows are sent again, which at-least-once delivery already
    allows (the consumer de-duplicates); the payment's own transaction is not affected."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def _claim(session: Session, batch: int, *, lock: bool) -> list[Row]:
    query = _CLAIM_LOCKED if lock else _CLAIM
    rows = session.execute(query, {"now": utcnow(), "batch": batch}).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _publish(publisher: Publisher, rows: list[Row]) -> tuple[PublishResult, str | None]:
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
    rows: list[Row],
    result: PublishResult,
    retry: RetryPolicy,
    outcome: BatchOutcome,
) -> None:
    now = utcnow()
    if result.confirmed:
        # One UPDATE for the whole confirmed batch (bench/relay.py: this is what keeps the
        # relay near the raw publish loop).
        postgresql = session.get_bind().dialect.name == "postgresql"
        mark = _MARK_SENT_ARRAY if postgresql else _MARK_SENT_LIST
        session.execute(mark, {"ids": result.confirmed, "now": now})
        outcome.sent = len(result.confirmed)
    attempts_by_id = {r[0]: r[4] for r in rows}
    for record_id, reason in result.failed.items():
        attempts = attempts_by_id.get(record_id, 0) + 1
        dead = attempts >= retry.max_attempts
        session.execute(
            update(_OUTBOX)
            .where(_o.id == record_id)
            .values(
                attempts=attempts,
                last_error=reason[:1000],
                status=DEAD if dead else PENDING,
                dead_at=now if dead else None,
                next_attempt_at=now + retry.delay(attempts),
            )
        )
        outcome.failed += 1
        if dead:
            outcome.dead += 1
            log.warning("tax record dead: broker refused it", extra={"record_id": record_id})


def _relay_batches_same_database(
    database: Database,
    publisher: DatabaseQueuePublisher,
    *,
    batch: int,
    batches: int,
    after_publish: AfterPublishHook | None,
) -> BatchOutcome:
    """The embedded queue in the outbox's own database: publish and mark sent in ONE
    transaction (INSERT … SELECT, no row leaves the database), so a crash can neither lose a
    record nor send it twice. Same SKIP LOCKED claim on PostgreSQL, in a single statement
    (`_enqueue_due_postgresql`); two on SQLite (`_enqueue_due_sqlite`).

    Up to `batches` batches share the transaction (stopping at the first short one): the
    commit, not the statements, is most of a batch's cost on SQLite (bench/relay.py). Any
    failure rolls back every batch of the transaction together, queue rows and marks alike,
    so they all stay pending and go out once, later.
    """
    outcome = BatchOutcome(batches=0)
    postgresql = database.engine.dialect.name == "postgresql"
    with database.job() as session:
        if postgresql:
            _relaxed_commit(session)
        for _ in range(batches):
            params = {"now": utcnow(), "batch": batch, "topic": publisher.queue}
            if postgresql:
                confirmed = list(session.scalars(_ENQUEUE_DUE_POSTGRESQL, params))
            else:
                queued = session.execute(_ENQUEUE_DUE_SQLITE, params).all()
                confirmed = [message_id for _, message_id in queued]
                if queued:
                    queue_ids = [queue_id for queue_id, _ in queued]
                    bounds = {"lo": min(queue_ids), "hi": max(queue_ids), "now": params["now"]}
                    result = session.execute(_MARK_DUE_SENT_SQLITE, bounds)
                    marked = result.rowcount  # type: ignore[attr-defined]
                    if marked != len(confirmed):
                        raise RelayInconsistency(
                            f"queued {len(confirmed)} records but marked {marked} sent"
                        )
            outcome.batches += 1
            outcome.claimed += len(confirmed)
            outcome.sent += len(confirmed)
            if confirmed and after_publish is not None:
                after_publish(PublishResult(confirmed=confirmed))
            if len(confirmed) < batch:
                break
    return outcome


def relay_batch(
    database: Database,
    publisher: Publisher,
    *,
    batch: int = 200,
    retry: RetryPolicy = DEFAULT_RETRY,
    batches: int = 1,
    after_publish: AfterPublishHook | None = None,
) -> BatchOutcome:
    """Publish one batch of due records (up to `batches` batches in one transaction for the
    database queue in the outbox's own database); see the module docstring.

    `after_publish` runs between the broker's confirms and the commit that marks rows sent,
    once per batch (tests inject a crash there).
    """
    if isinstance(publisher, DatabaseQueuePublisher) and publisher.engine is database.engine:
        return _relay_batches_same_database(
            database, publisher, batch=batch, batches=batches, after_publish=after_publish
        )
    outcome = BatchOutcome()
    locking = database.engine.dialect.name == "postgresql"
    if locking:
        with database.job() as session:
            _relaxed_commit(session)
            rows = _claim(session, batch, lock=True)
            outcome.claimed = len(rows)
            if not rows:
                return outcome
            result, outcome.unavailable = _publish(publisher, rows)
            if after_publish is not None:
                after_publish(result)
            _settle(session, rows, result, retry, outcome)
        return outcome
    with database.job() as session:
        rows = _claim(session, batch, lock=False)
    outcome.claimed = len(rows)
    if not rows:
        return outcome
    result, outcome.unavailable = _publish(publisher, rows)
    if after_publish is not None:
        after_publish(result)
    with database.job() as session:
        _settle(session, rows, result, retry, outcome)
    return outcome


@dataclass
class _Claimed:
    """One batch's own transaction: on PostgreSQL its rows stay locked until `_finish`."""

    session: Session
    rows: list[Row]


def _open_claim(database: Database, batch: int) -> _Claimed:
    # Not the scoped session: two batches' transactions are open at once (one publishing,
    # the next one claimed), each on its own connection.
    session = database.session_factory()
    try:
        _relaxed_commit(session)
        return _Claimed(session, _claim(session, batch, lock=True))
    except BaseException:
        _abort(_Claimed(session, []))
        raise


def _finish(
    claimed: _Claimed, result: PublishResult, retry: RetryPolicy, outcome: BatchOutcome
) -> None:
    """Mark what the broker confirmed (and count refusals), commit, release the connection."""
    try:
        _settle(claimed.session, claimed.rows, result, retry, outcome)
        claimed.session.commit()
    except BaseException:
        _abort(claimed)
        raise
    claimed.session.close()


def _abort(claimed: _Claimed) -> None:
    """Roll back: the batch's rows are released, still pending, and go out again later."""
    try:
        claimed.session.rollback()
    finally:
        claimed.session.close()


def _abort_when_claimed(claim: Future[_Claimed]) -> None:
    _abort(claim.result())  # a claim that failed has nothing to release


def _pipelined(
    database: Database,
    publisher: Publisher,
    *,
    batch: int,
    retry: RetryPolicy,
    stop: threading.Event,
    after_publish: AfterPublishHook | None,
) -> Generator[BatchOutcome, None, None]:
    """PostgreSQL with a broker: batches back to back, each database round overlapped with
    the next batch's publishing. Yields each batch's outcome once its marks are committed;
    returns after a short batch, an outage, or when `stop` is set.

    A helper thread does the database work: while the main thread publishes batch k and
    waits for its confirms, the helper commits batch k-1's marks and claims batch k+1, each
    batch in its own transaction on its own connection. Nothing about a batch changes: its
    rows are locked (SKIP LOCKED) from its claim until the commit of its marks, so neither
    this relay's next claim nor another relay can take them, and they are marked only after
    the broker confirmed them. On any exit the claimed-but-unpublished batch is rolled back
    (its rows stay pending) and a batch whose confirms are in is still committed.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-db") as helper:
        next_claim: Future[_Claimed] | None = helper.submit(_open_claim, database, batch)
        committing: tuple[Future[None], BatchOutcome] | None = None
        current: _Claimed | None = None
        try:
            while next_claim is not None:
                current, next_claim = next_claim.result(), None
                rows = current.rows
                outcome = BatchOutcome(claimed=len(rows))
                if len(rows) == batch and not stop.is_set():
                    next_claim = helper.submit(_open_claim, database, batch)
                result = PublishResult()
                if rows:
                    result, outcome.unavailable = _publish(publisher, rows)
                    if after_publish is not None:
                        after_publish(result)
                finishing = helper.submit(_finish, current, result, retry, outcome)
                current = None  # the helper owns it now: it commits or rolls it back
                if committing is not None:
                    committing[0].result()
                    yield committing[1]
                committing = (finishing, outcome)
                if outcome.unavailable:
                    break
            if committing is not None:
                committing[0].result()
                yield committing[1]
                committing = None
        finally:
            # Leaving early (an exception, the caller stopped): release what is not
            # published, let a confirmed batch's commit finish.
            if current is not None:
                helper.submit(_abort, current)
            if next_claim is not None:
                helper.submit(_abort_when_claimed, next_claim)
            if committing is not None:
                with contextlib.suppress(Exception):  # its error, if any, is the helper's
                    committing[0].result()


def _outcomes(
    database: Database,
    publisher: Publisher,
    settings: RelaySettings,
    stop: threading.Event,
    after_publish: AfterPublishHook | None,
) -> Generator[BatchOutcome, None, None]:
    """The outcomes of one burst of batches: pipelined on PostgreSQL with a broker (the
    SKIP LOCKED claim is what lets two batches be open at once), otherwise one batch (or one
    database-queue transaction) at a time."""
    same_database = (
        isinstance(publisher, DatabaseQueuePublisher) and publisher.engine is database.engine
    )
    if settings.overlap and not same_database and database.engine.dialect.name == "postgresql":
        yield from _pipelined(
            database,
            publisher,
            batch=settings.batch,
            retry=settings.retry,
            stop=stop,
            after_publish=after_publish,
        )
        return
    yield relay_batch(
        database,
        publisher,
        batch=settings.batch,
        retry=settings.retry,
        batches=settings.transaction_batches,
        after_publish=after_publish,
    )


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
        outcome = BatchOutcome(claimed=0)
        try:
            with contextlib.closing(
                _outcomes(database, publisher, settings, stop, after_publish)
            ) as outcomes:
                for outcome in outcomes:
                    totals.add(outcome)
                    if outcome.sent or outcome.failed:
                        log.info(
                            "relay: batch published",
                            extra={
                                "sent": outcome.sent,
                                "failed": outcome.failed,
                                "dead": outcome.dead,
                            },
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
        if outcome.claimed < settings.batch * outcome.batches:  # the last batch came up short
            if once:
                return totals
            stop.wait(settings.idle_seconds)
    return totals
