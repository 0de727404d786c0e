"""Queue transports, chosen by `QUEUE_URL` (DESIGN.md contracts): RabbitMQ or the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from api.payments.outbox.transports.base import (
    DEFAULT_QUEUE,
    Delivery,
    OutgoingMessage,
    Publisher,
    PublishResult,
    QueueTarget,
    Subscriber,
    TransportUnavailable,
    parse_queue_url,
)


def open_publisher(
    queue_url: str, *, database_url: str, engine: Engine | None = None, **options: Any
) -> Publisher:
    """The publisher for `queue_url`; `engine` lets the default database queue share the app's."""
    target = parse_queue_url(queue_url, database_url=database_url)
    if target.kind == "amqp":
        from api.payments.outbox.transports.amqp import AmqpPublisher

        return AmqpPublisher(target.url, target.queue, **options)
    from api.payments.outbox.transports.dbqueue import DatabaseQueuePublisher

    return DatabaseQueuePublisher(
        target.url,
        target.queue,
        engine=None if target.explicit else engine,
        create_table=target.explicit,
    )


def open_subscriber(
    queue_url: str, *, database_url: str, engine: Engine | None = None, **options: Any
) -> Subscriber:
    """The subscriber for `queue_url` (the tax-side consumer reads through this)."""
    target = parse_queue_url(queue_url, database_url=database_url)
    if target.kind == "amqp":
        from api.payments.outbox.transports.amqp import AmqpSubscriber

        return AmqpSubscriber(target.url, target.queue, **options)
    from api.payments.outbox.transports.dbqueue import DatabaseQueueSubscriber

    return DatabaseQueueSubscriber(
        target.url,
        target.queue,
        engine=None if target.explicit else engine,
        create_table=target.explicit,
        **options,
    )


__all__ = [
    "DEFAULT_QUEUE",
    "Delivery",
    "OutgoingMessage",
    "PublishResult",
    "Publisher",
    "QueueTarget",
    "Subscriber",
    "TransportUnavailable",
    "open_publisher",
    "open_subscriber",
    "parse_queue_url",
]
