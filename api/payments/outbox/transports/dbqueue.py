"""The embedded queue: a database table standing in for RabbitMQ, so `make run` needs no broker.

Publishing inserts one row per message in its own transaction; the commit is the publisher
confirm. Consumers claim ready rows by moving `visible_at` forward (a visibility timeout, as
SQS does): a consumer that dies without acknowledging lets its rows reappear. On PostgreSQL the
claim uses `FOR UPDATE SKIP LOCKED`, so several consumers never claim the same row; SQLite has a
single writer (BEGIN IMMEDIATE), which serialises claims. A row delivered more than
`max_deliveries` times is dead-lettered, as a quorum queue's delivery limit does.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from api.db import make_engine, utcnow
from api.payments.outbox.models import QueueMessage
from api.payments.outbox.transports.base import (
    Delivery,
    OutgoingMessage,
    PublishResult,
    TransportUnavailable,
)

VISIBILITY_TIMEOUT_SECONDS = 60.0
MAX_DELIVERIES = 10


class _QueueDatabase:
    def __init__(self, url: str, *, engine: Engine | None, create_table: bool) -> None:
        self.url = url
        self._own_engine = engine is None
        self.engine = engine or make_engine(url)
        self._create_table = create_table
        self._ready = False

    def ready(self) -> Engine:
        if not self._ready:
            if self._create_table:
                try:
                    QueueMessage.__table__.create(self.engine, checkfirst=True)  # type: ignore[attr-defined]
                except (OperationalError, DBAPIError) as exc:
                    raise TransportUnavailable(f"queue database unreachable: {exc}") from exc
            self._ready = True
        return self.engine

    def close(self) -> None:
        if self._own_engine:
            self.engine.dispose()


class DatabaseQueuePublisher:
    """Inserts a batch into `queue_messages` in one transaction; commit = confirm."""

    def __init__(
        self, url: str, queue: str, *, engine: Engine | None = None, create_table: bool = False
    ) -> None:
        self.queue = queue
        self._db = _QueueDatabase(url, engine=engine, create_table=create_table)

    @property
    def engine(self) -> Engine:
        """The queue's engine: when it is the outbox's own, the relay publishes in-transaction."""
        return self._db.engine

    def publish(self, messages: list[OutgoingMessage]) -> PublishResult:
        if not messages:
            return PublishResult()
        engine = self._db.ready()
        now = utcnow()
        rows = [
            {
                "topic": self.queue,
                "message_id": m.message_id,
                "headers": m.headers,
                "body": m.body.decode("utf-8"),
                "enqueued_at": now,
                "visible_at": now,
                "delivery_count": 0,
            }
            for m in messages
        ]
        try:
            with engine.begin() as conn:
                conn.execute(QueueMessage.__table__.insert(), rows)  # type: ignore[attr-defined]
        except (OperationalError, DBAPIError) as exc:
            raise TransportUnavailable(f"queue database failed: {type(exc).__name__}") from exc
        return PublishResult(confirmed=[m.message_id for m in messages])

    def close(self) -> None:
        self._db.close()


class DatabaseQueueSubscriber:
    """Claims ready rows with a visibility timeout; ack deletes, reject dead-letters."""

    def __init__(
        self,
        url: str,
        queue: str,
        *,
        engine: Engine | None = None,
        create_table: bool = False,
        visibility_timeout: float = VISIBILITY_TIMEOUT_SECONDS,
        max_deliveries: int = MAX_DELIVERIES,
        poll_interval: float = 0.2,
    ) -> None:
        self.queue = queue
        self._db = _QueueDatabase(url, engine=engine, create_table=create_table)
        self.visibility_timeout = timedelta(seconds=visibility_timeout)
        self.max_deliveries = max_deliveries
        self.poll_interval = poll_interval

    def _claim(self, max_messages: int) -> list[Delivery]:
        engine = self._db.ready()
        now = utcnow()
        t = QueueMessage
        query = (
            select(t.id)
            .where(t.topic == self.queue, t.dead_at.is_(None), t.visible_at <= now)
            .order_by(t.id)
            .limit(max_messages)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with engine.begin() as conn:
            ids = list(conn.scalars(query))
            if not ids:
                return []
            conn.execute(
                update(t)
                .where(t.id.in_(ids))
                .values(
                    visible_at=now + self.visibility_timeout, delivery_count=t.delivery_count + 1
                )
            )
            rows = conn.execute(
                select(t.id, t.message_id, t.headers, t.body, t.delivery_count)
                .where(t.id.in_(ids))
                .order_by(t.id)
            ).all()
            over = [r.id for r in rows if r.delivery_count > self.max_deliveries]
            if over:
                conn.execute(
                    update(t)
                    .where(t.id.in_(over))
                    .values(dead_at=now, dead_reason="delivery limit reached")
                )
        return [
            Delivery(
                message_id=r.message_id,
                body=r.body.encode("utf-8"),
                headers=r.headers if isinstance(r.headers, dict) else json.loads(r.headers or "{}"),
                delivery_count=r.delivery_count,
                handle=r.id,
            )
            for r in rows
            if r.delivery_count <= self.max_deliveries
        ]

    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                claimed = self._claim(max_messages)
            except (OperationalError, DBAPIError) as exc:
                raise TransportUnavailable(f"queue database failed: {type(exc).__name__}") from exc
            if claimed or time.monotonic() >= deadline:
                return claimed
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def ack(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        with self._db.ready().begin() as conn:
            conn.execute(
                delete(QueueMessage).where(QueueMessage.id.in_([d.handle for d in deliveries]))
            )

    def reject(self, delivery: Delivery, reason: str) -> None:
        with self._db.ready().begin() as conn:
            conn.execute(
                update(QueueMessage)
                .where(QueueMessage.id == delivery.handle)
                .values(dead_at=utcnow(), dead_reason=reason[:500])
            )

    def release(self, delivery: Delivery) -> None:
        with self._db.ready().begin() as conn:
            conn.execute(
                update(QueueMessage)
                .where(QueueMessage.id == delivery.handle)
                .values(visible_at=utcnow())
            )

    def close(self) -> None:
        self._db.close()
