"""RabbitMQ specifics against the real broker: quorum topology, confirms that really wait,
nacks and unroutable messages reported as failures, message properties."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from amqp.exceptions import MessageNacked
from kombu import Connection, Producer, Queue

from api.payments.outbox.transports import OutgoingMessage, open_subscriber, parse_queue_url
from api.payments.outbox.transports.amqp import ROUTING_KEY, AmqpPublisher


def _messages(n: int) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(str(uuid.uuid4()), b'{"x":1}', {"schema_version": 1, "event": "e"})
        for _ in range(n)
    ]


@pytest.fixture
def publisher(amqp_queue_url: str) -> Iterator[AmqpPublisher]:
    target = parse_queue_url(amqp_queue_url, database_url="")
    p = AmqpPublisher(target.url, target.queue)
    yield p
    p.close()


@pytest.fixture
def full_queue(publisher: AmqpPublisher, rabbitmq_url: str) -> Iterator[None]:
    """A second queue bound to the exchange that refuses everything: the broker nacks."""
    publisher.publish([])  # declares the topology
    with Connection(rabbitmq_url) as conn:
        conn.ensure_connection(max_retries=0)
        queue = Queue(
            f"{publisher.topology.name}.full",
            exchange=publisher.topology.exchange,
            routing_key=ROUTING_KEY,
            queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        queue.bind(conn.channel()).declare()
        yield
        queue.bind(conn.channel()).delete()


def test_topology_is_quorum_with_dead_letters_and_properties_arrive(
    publisher: AmqpPublisher, amqp_queue_url: str
) -> None:
    messages = _messages(3)
    result = publisher.publish(messages)
    assert result.confirmed == [m.message_id for m in messages] and not result.failed
    assert publisher.topology.queue_type == "quorum"  # RabbitMQ 3.10 here takes quorum queues

    subscriber = open_subscriber(amqp_queue_url, database_url="")
    try:
        deliveries = subscriber.receive(10, 5.0)
        assert [d.message_id for d in deliveries] == [m.message_id for m in messages]
        raw = deliveries[0].handle
        assert raw.properties["delivery_mode"] == 2  # persistent
        assert raw.content_type == "application/json"
        assert deliveries[0].headers["schema_version"] == 1
        subscriber.reject(deliveries[0], "test")
        subscriber.ack(deliveries[1:])
    finally:
        subscriber.close()
    with Connection(amqp_queue_url.split("?")[0]) as conn:
        conn.ensure_connection(max_retries=0)
        dead = publisher.topology.dead_queue(publisher.topology.queue_type)
        bound = dead.bind(conn.channel())
        # A quorum queue dead-letters after the reject is acknowledged, asynchronously: under
        # load the message reaches <queue>.dead a moment later, so wait for it (bounded).
        deadline = time.monotonic() + 15
        message = bound.get(no_ack=True)
        while message is None and time.monotonic() < deadline:
            time.sleep(0.1)
            message = bound.get(no_ack=True)
        assert message is not None  # the rejected delivery went to <queue>.dead
        assert message.properties["message_id"] == messages[0].message_id


@pytest.mark.usefixtures("full_queue")
def test_nacked_messages_are_failures_not_confirmed(publisher: AmqpPublisher) -> None:
    messages = _messages(3)
    result = publisher.publish(messages)
    assert result.confirmed == []
    assert set(result.failed) == {m.message_id for m in messages}
    assert set(result.failed.values()) == {"nacked by broker"}


@pytest.mark.usefixtures("full_queue")
def test_kombu_confirm_publish_really_waits_for_the_confirm(
    publisher: AmqpPublisher, rabbitmq_url: str
) -> None:
    """kombu's `confirm_publish=True` (the benchmark's baseline) blocks until the broker
    answers: a nack surfaces as an exception from `publish` itself."""
    with Connection(rabbitmq_url, transport_options={"confirm_publish": True}) as conn:
        conn.ensure_connection(max_retries=0)
        producer = Producer(conn.channel(), exchange=publisher.topology.exchange)
        with pytest.raises(MessageNacked):
            producer.publish(b"{}", routing_key=ROUTING_KEY, retry=False)


def test_unroutable_messages_come_back_as_failures(
    publisher: AmqpPublisher, rabbitmq_url: str
) -> None:
    publisher.publish([])
    with Connection(rabbitmq_url) as conn:
        conn.ensure_connection(max_retries=0)
        conn.channel().queue_unbind(publisher.topology.name, publisher.topology.name, ROUTING_KEY)
    messages = _messages(2)
    result = publisher.publish(messages)
    assert result.confirmed == []
    assert all("NO_ROUTE" in reason for reason in result.failed.values())
    assert set(result.failed) == {m.message_id for m in messages}
