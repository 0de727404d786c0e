"""The one small interface every queue transport implements (STYLE.md: Warehouse's external
services behind an interface, chosen by configuration).

A `Publisher` takes a batch and says, per message, what the broker did: confirmed (it has the
message durably), failed (it refused or could not route this message: the message's fault), or
nothing (the connection broke before it answered: unknown, so the record stays pending and is
re-sent). A `Subscriber` hands deliveries to the consumer, which acknowledges, rejects (to the
dead-letter queue) or releases each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_QUEUE = "tax.contributions"
CONTENT_TYPE = "application/json"


class TransportUnavailable(Exception):
    """The broker (or queue database) cannot be reached or broke mid-batch: retry later.

    `partial` holds what was settled before the break (confirmed ids may be marked sent).
    """

    def __init__(self, message: str, partial: PublishResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial or PublishResult()


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str  # the record id
    body: bytes  # UTF-8 JSON
    headers: dict[str, Any]  # schema_version, event


@dataclass
class PublishResult:
    confirmed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # message id -> reason


@dataclass
class Delivery:
    message_id: str
    body: bytes
    headers: dict[str, Any]
    delivery_count: int  # 1 on the first delivery
    handle: Any = None  # the transport's own handle (kombu message, queue row id)


class Publisher(Protocol):
    def publish(self, messages: list[OutgoingMessage]) -> PublishResult: ...

    def close(self) -> None: ...


class Subscriber(Protocol):
    def receive(self, max_messages: int, timeout: float) -> list[Delivery]: ...

    def ack(self, deliveries: list[Delivery]) -> None: ...

    def reject(self, delivery: Delivery, reason: str) -> None: ...

    def release(self, delivery: Delivery) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class QueueTarget:
    """A parsed `QUEUE_URL`: which transport, its connection URL and the queue's name."""

    kind: str  # "amqp" | "database"
    url: str  # without our own query parameters
    queue: str
    explicit: bool  # False: the default database queue inside DATABASE_URL

    def describe(self) -> str:
        """The target without credentials, for logs."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{self.kind}://{host}{port}{parts.path} queue={self.queue}"


def parse_queue_url(queue_url: str, *, database_url: str) -> QueueTarget:
    """`amqp://…` (RabbitMQ), a SQLAlchemy URL (database queue there) or empty (database queue
    in `database_url`). `?queue=NAME` names the queue (default `tax.contributions`)."""
    if not queue_url:
        return QueueTarget("database", database_url, DEFAULT_QUEUE, explicit=False)
    parts = urlsplit(queue_url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    queue = next((v for k, v in params if k == "queue"), DEFAULT_QUEUE)
    rest = urlencode([(k, v) for k, v in params if k != "queue"])
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
    kind = "amqp" if parts.scheme in ("amqp", "amqps", "pyamqp") else "database"
    return QueueTarget(kind, url, queue, explicit=True)
