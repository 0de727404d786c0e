"""RabbitMQ through kombu (py-amqp): the production transport.

Topology, declared idempotently by publisher and consumer alike (whoever starts first):
  exchange `<queue>` (direct, durable) --routing key `contribution`--> queue `<queue>`
  queue `<queue>`: quorum (`x-queue-type: quorum`, replicated on a cluster) with
      `x-dead-letter-exchange: <queue>.dlx` and `x-delivery-limit` (a delivery that crashes the
      consumer again and again is dead-lettered, not redelivered forever); classic durable
      with the same dead-letter exchange if the server refuses quorum queues.
  exchange `<queue>.dlx` (fanout, durable) --> queue `<queue>.dead` (the tax side's rejects).

Publishing: persistent messages (delivery_mode 2), `mandatory` (an unroutable message comes
back as basic.return instead of vanishing), publisher confirms. A batch is published with
confirms *pipelined*: every message goes out, then we wait until the broker has acked or
nacked each delivery tag (RabbitMQ sends basic.return before the ack of an unroutable message,
so a returned message is known failed when its ack arrives). Only acked, unreturned messages
count as confirmed. This is the same guarantee as kombu's `confirm_publish=True` (which waits
for each message in turn) at a fraction of the round trips; see bench/relay.py.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections import deque
from typing import Any

import amqp
from kombu import Connection, Consumer, Exchange, Producer, Queue

from api.payments.outbox.transports.base import (
    CONTENT_TYPE,
    Delivery,
    OutgoingMessage,
    PublishResult,
    TransportUnavailable,
)

log = logging.getLogger(__name__)

ROUTING_KEY = "contribution"
DELIVERY_LIMIT = 10
CONFIRM_TIMEOUT_SECONDS = 30.0


class Topology:
    """The names and arguments of the exchanges and queues for one queue name."""

    def __init__(self, name: str, *, delivery_limit: int = DELIVERY_LIMIT) -> None:
        self.name = name
        self.exchange = Exchange(name, type="direct", durable=True, auto_delete=False)
        self.dlx = Exchange(f"{name}.dlx", type="fanout", durable=True, auto_delete=False)
        self.delivery_limit = delivery_limit
        self.queue_type = "quorum"

    def queue(self, queue_type: str) -> Queue:
        args: dict[str, Any] = {"x-dead-letter-exchange": self.dlx.name}
        if queue_type == "quorum":
            args |= {"x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit}
        return Queue(
            self.name,
            exchange=self.exchange,
            routing_key=ROUTING_KEY,
            durable=True,
            auto_delete=False,
            queue_arguments=args,
        )

    def dead_queue(self, queue_type: str) -> Queue:
        args = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
        return Queue(
            f"{self.name}.dead",
            exchange=self.dlx,
            routing_key="",
            durable=True,
            auto_delete=False,
            queue_arguments=args,
        )

    def declare(self, connection: Connection) -> str:
        """Declare everything (idempotent); returns the queue type in use."""
        for queue_type in ("quorum", "classic"):
            channel = connection.channel()
            try:
                self.dlx.bind(channel).declare()
                self.exchange.bind(channel).declare()
                self.dead_queue(queue_type).bind(channel).declare()
                self.queue(queue_type).bind(channel).declare()
                self.queue_type = queue_type
                return queue_type
            except amqp.exceptions.ChannelError as exc:
                # A server without quorum queues (or a classic queue already there) refuses
                # the arguments and closes the channel: fall back to a classic durable queue.
                if queue_type == "classic":
                    raise
                log.warning("quorum queue refused, using a classic durable queue: %s", exc)
            finally:
                with contextlib.suppress(Exception):  # the server may have closed it already
                    channel.close()
        raise AssertionError("unreachable")

    def delete(self, connection: Connection) -> None:
        """Remove the queues and exchanges (tests and benchmarks only)."""
        channel = connection.channel()
        try:
            for queue_type in (self.queue_type,):
                self.queue(queue_type).bind(channel).delete()
                self.dead_queue(queue_type).bind(channel).delete()
            self.exchange.bind(channel).delete()
            self.dlx.bind(channel).delete()
        finally:
            channel.close()


def _connection(url: str) -> Connection:
    return Connection(
        url,
        connect_timeout=5,
        heartbeat=0,
        transport_options={"confirm_publish": False, "max_retries": 0},
    )


def _connection_errors(connection: Connection) -> tuple[type[BaseException], ...]:
    return (
        *connection.connection_errors,
        *connection.recoverable_connection_errors,
        OSError,
        socket.timeout,
    )


class AmqpPublisher:
    """Publishes batches with pipelined publisher confirms on one long-lived channel."""

    def __init__(self, url: str, queue: str, *, delivery_limit: int = DELIVERY_LIMIT) -> None:
        self.url = url
        self.topology = Topology(queue, delivery_limit=delivery_limit)
        self._connection: Connection | None = None
        self._channel: Any = None
        self._producer: Producer | None = None
        self._next_tag = 0
        self._outstanding: dict[int, str] = {}
        self._acked: set[str] = set()
        self._nacked: set[str] = set()
        self._returned: dict[str, str] = {}

    # -- connection --------------------------------------------------------------------------

    def _ensure(self) -> None:
        if self._channel is not None:
            return
        connection = _connection(self.url)
        try:
            connection.ensure_connection(max_retries=0)  # fail fast: the relay backs off itself
            self.topology.declare(connection)
            channel = connection.channel()
            channel.confirm_select()
        except Exception as exc:
            connection.release()
            raise TransportUnavailable(
                f"RabbitMQ unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._connection = connection
        self._channel = channel
        self._producer = Producer(channel, exchange=self.topology.exchange, auto_declare=False)
        self._next_tag = 0

    def _reset(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = None
        self._producer = None
        self._outstanding.clear()
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                connection.release()

    def close(self) -> None:
        self._reset()

    # -- confirm callbacks (called by py-amqp while draining events) ----------------------

    def _settle(self, tag: int, multiple: bool, into: set[str]) -> None:
        tags = [t for t in self._outstanding if t <= tag] if multiple else [tag]
        for t in tags:
            message_id = self._outstanding.pop(t, None)
            if message_id is not None:
                into.add(message_id)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, self._acked)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, self._nacked)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        message_id = (message.properties or {}).get("message_id", "")
        self._returned[message_id] = f"returned by broker: {exc}"

    # -- publish -------------------------------------------------------------------------------

    def publish(self, messages: list[OutgoingMessage]) -> PublishResult:
        self._ensure()
        assert self._producer is not None and self._connection is not None
        self._acked, self._nacked, self._returned = set(), set(), {}
        errors = _connection_errors(self._connection)
        try:
            for m in messages:
                self._next_tag += 1
                self._outstanding[self._next_tag] = m.message_id
                self._producer.publish(
                    m.body,
                    routing_key=ROUTING_KEY,
                    content_type=CONTENT_TYPE,
                    content_encoding="utf-8",
                    delivery_mode=2,
                    mandatory=True,
                    message_id=m.message_id,
                    headers=m.headers,
                    retry=False,
                )
            deadline = time.monotonic() + CONFIRM_TIMEOUT_SECONDS
            while self._outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("publisher confirms timed out")
                self._connection.drain_events(timeout=remaining)
        except (*errors, TimeoutError, amqp.exceptions.AMQPError) as exc:
            partial = self._result(messages)
            self._reset()
            raise TransportUnavailable(
                f"RabbitMQ failed mid-batch: {type(exc).__name__}: {exc}", partial=partial
            ) from exc
        return self._result(messages)

    def _result(self, messages: list[OutgoingMessage]) -> PublishResult:
        result = PublishResult()
        for m in messages:
            if m.message_id in self._returned:
                result.failed[m.message_id] = self._returned[m.message_id]
            elif m.message_id in self._nacked:
                result.failed[m.message_id] = "nacked by broker"
            elif m.message_id in self._acked:
                result.confirmed.append(m.message_id)
        return result


class AmqpSubscriber:
    """Consumes the queue with manual acknowledgements and a bounded prefetch."""

    def __init__(
        self, url: str, queue: str, *, prefetch: int = 200, delivery_limit: int = DELIVERY_LIMIT
    ) -> None:
        self.url = url
        self.topology = Topology(queue, delivery_limit=delivery_limit)
        self.prefetch = prefetch
        self._connection: Connection | None = None
        self._consumer: Consumer | None = None
        self._buffer: deque[Any] = deque()

    def _ensure(self) -> None:
        if self._consumer is not None:
            return
        connection = _connection(self.url)
        try:
            connection.ensure_connection(max_retries=0)  # fail fast: the relay backs off itself
            queue_type = self.topology.declare(connection)
            channel = connection.channel()
            channel.basic_qos(0, self.prefetch, False)
            consumer = Consumer(
                channel,
                queues=[self.topology.queue(queue_type)],
                callbacks=[self._on_message],
                accept=[CONTENT_TYPE],
                no_ack=False,
                auto_declare=False,
            )
            consumer.consume()
        except Exception as exc:
            connection.release()
            raise TransportUnavailable(
                f"RabbitMQ unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        self._connection = connection
        self._consumer = consumer

    def _on_message(self, _body: Any, message: Any) -> None:
        self._buffer.append(message)

    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        self._ensure()
        assert self._connection is not None
        deadline = time.monotonic() + timeout
        try:
            while len(self._buffer) < max_messages:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Once something has arrived, only linger briefly for the rest of a batch.
                wait = min(remaining, 0.05) if self._buffer else remaining
                try:
                    self._connection.drain_events(timeout=wait)
                except TimeoutError:
                    if self._buffer:
                        break
        except (*_connection_errors(self._connection), amqp.exceptions.AMQPError) as exc:
            self.close()
            raise TransportUnavailable(f"RabbitMQ consumer failed: {exc}") from exc
        out: list[Delivery] = []
        while self._buffer and len(out) < max_messages:
            message = self._buffer.popleft()
            headers = dict(message.headers or {})
            redelivered = bool(message.delivery_info.get("redelivered"))
            count = int(headers.get("x-delivery-count", 1 if redelivered else 0)) + 1
            out.append(
                Delivery(
                    message_id=str(message.properties.get("message_id", "")),
                    body=message.body if isinstance(message.body, bytes) else message.body.encode(),
                    headers=headers,
                    delivery_count=count,
                    handle=message,
                )
            )
        return out

    def ack(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            d.handle.ack()

    def reject(self, delivery: Delivery, reason: str) -> None:
        delivery.handle.reject(requeue=False)  # to <queue>.dlx -> <queue>.dead

    def release(self, delivery: Delivery) -> None:
        delivery.handle.requeue()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._consumer = None
        self._buffer.clear()
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                connection.release()
