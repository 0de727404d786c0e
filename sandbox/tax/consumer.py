"""The tax-side consumer 税务端消费者: reads the confirmation queue, books each record once,
and acknowledges back to the API.

Per batch: parse and check each delivery against the published schema (and the optional
rejection rule that stands in for the tax side's own checks, e.g. a town not yet linked,
信息关联) → book the good ones in one transaction of the tax store (by record id: a re-sent
record is a duplicate, booked once) → acknowledge the deliveries to the broker → send the
pending acknowledgements to the API. Rejected deliveries go to the dead-letter queue and a
"rejected" acknowledgement tells the API, which retries the record a few times and then marks
it dead. If the tax store fails, the deliveries are released and come back later.

The order (book, then ack the broker, then tell the API) means a crash anywhere causes at
most a redelivery (booked once, acknowledged again) — never a record acknowledged to the API
that the tax side does not have.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from api.payments.outbox.record import schema_errors
from api.payments.outbox.transports import Delivery, Subscriber, TransportUnavailable
from sandbox.tax.store import TaxStore

log = logging.getLogger(__name__)

RejectRule = Callable[[dict[str, Any]], str | None]


class AckSink(Protocol):
    """Where acknowledgements go (the API over HTTP in the sandbox; a direct call in tests)."""

    def send(self, acks: list[dict[str, Any]]) -> None: ...


@dataclass
class PollStats:
    received: int = 0
    booked: int = 0
    duplicates: int = 0
    rejected: int = 0
    released: int = 0
    acks_sent: int = 0


def reject_towns(codes: set[str]) -> RejectRule:
    """A rule that rejects every record of these towns (simulates unlinked registrations)."""

    def rule(record: dict[str, Any]) -> str | None:
        if record.get("town_code") in codes:
            return f"town {record.get('town_code')} not linked (信息关联未完成)"
        return None

    return rule


class TaxConsumer:
    def __init__(
        self,
        subscriber: Subscriber,
        store: TaxStore,
        sink: AckSink | None,
        *,
        reject_rule: RejectRule | None = None,
        batch: int = 200,
    ) -> None:
        self.subscriber = subscriber
        self.store = store
        self.sink = sink
        self.reject_rule = reject_rule
        self.batch = batch

    def _check(self, delivery: Delivery) -> tuple[dict[str, Any] | None, str | None]:
        try:
            record = json.loads(delivery.body)
        except ValueError:
            return None, "body is not JSON"
        errors = schema_errors(record)
        if errors:
            return None, "schema: " + "; ".join(errors[:5])
        if record["id"] != delivery.message_id:
            return None, "message_id does not match the record id"
        if self.reject_rule is not None:
            reason = self.reject_rule(record)
            if reason:
                return None, reason
        return record, None

    def poll(self, timeout: float = 1.0) -> PollStats:
        """Receive one batch (waiting up to `timeout`), book it, acknowledge it."""
        stats = PollStats()
        deliveries = self.subscriber.receive(self.batch, timeout)
        stats.received = len(deliveries)
        good: list[tuple[Delivery, dict[str, Any]]] = []
        for delivery in deliveries:
            record, reason = self._check(delivery)
            if record is None:
                self.store.reject(delivery.message_id, reason or "rejected")
                self.subscriber.reject(delivery, reason or "rejected")
                stats.rejected += 1
                log.info("tax consumer: rejected", extra={"record_id": delivery.message_id})
            else:
                good.append((delivery, record))
        if good:
            try:
                duplicates = self.store.book(r for _, r in good)
            except SQLAlchemyError:
                log.exception("tax consumer: store failed, releasing the batch")
                for delivery, _ in good:
                    self.subscriber.release(delivery)
                stats.released = len(good)
                good = []
            else:
                stats.duplicates = sum(duplicates)
                stats.booked = len(duplicates) - stats.duplicates
                self.subscriber.ack([d for d, _ in good])
        stats.acks_sent = self.flush_acks()
        return stats

    def flush_acks(self) -> int:
        """Send pending acknowledgements; on failure they stay pending for the next poll."""
        if self.sink is None:
            return 0
        sent = 0
        while True:
            pending = self.store.pending_acks()
            if not pending:
                return sent
            try:
                self.sink.send([a.as_json() for a in pending])
            except Exception as exc:  # the API is down or refused: keep them, retry later
                log.warning("tax consumer: acknowledgements not delivered: %s", exc)
                return sent
            self.store.mark_acks_sent([a.id for a in pending])
            sent += len(pending)

    def run(self, stop: threading.Event, *, idle_timeout: float = 1.0) -> None:
        """Consume until `stop` is set; back off while the queue is unreachable."""
        backoff = 1.0
        while not stop.is_set():
            try:
                self.poll(idle_timeout)
                backoff = 1.0
            except TransportUnavailable as exc:
                log.warning("tax consumer: queue unavailable (%s); retrying in %.0fs", exc, backoff)
                self.flush_acks()
                stop.wait(backoff)
                backoff = min(60.0, backoff * 2)
        self.subscriber.close()

    def drain(
        self, *, quiet_polls: int = 2, timeout: float = 0.3, max_polls: int = 1000
    ) -> PollStats:
        """Poll until the queue has been empty `quiet_polls` times in a row (tests, `--once`)."""
        total = PollStats()
        quiet = 0
        for _ in range(max_polls):
            stats = self.poll(timeout)
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            quiet = quiet + 1 if stats.received == 0 else 0
            if quiet >= quiet_polls:
                break
        return total
