"""The relay end to end, on SQLite and PostgreSQL, through the database queue and RabbitMQ:
every record reaches the tax side exactly once in effect, whatever fails in between."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest
from flask import Flask

from api.db import Database
from api.payments.outbox.models import DEAD, PENDING, SENT
from api.payments.outbox.relay import RelaySettings, run_relay
from api.payments.outbox.service import list_records
from api.payments.outbox.transports import (
    OutgoingMessage,
    Publisher,
    PublishResult,
    open_publisher,
    open_subscriber,
)
from sandbox.tax.consumer import reject_towns
from sandbox.tax.store import TaxStore
from tests.outbox.conftest import FAST_RETRY, Harness, closed_port


def test_every_event_is_booked_once_and_acknowledged(harness: Harness) -> None:
    paid = harness.enqueue(range(1, 31))
    reversal = harness.enqueue([7], event="contribution.reversed", reason="refund")

    totals = harness.relay()
    stats = harness.consumer.drain()

    assert totals.sent == 31 and totals.outages == 0
    booked = harness.store.booked()
    assert set(booked) == set(paid) | set(reversal)
    assert stats.booked == 31 and stats.duplicates == 0
    reversed_record = booked[reversal[0]]
    assert reversed_record["event"] == "contribution.reversed"
    assert reversed_record["reverses"] == paid[6]  # the paid record of contribution 7
    assert reversed_record["reason"] == "refund"
    messages = harness.messages()
    assert all(m.status == SENT and m.ack_status == "booked" for m in messages.values())
    assert all(m.acknowledged_at is not None and m.deliveries == 1 for m in messages.values())


def test_relay_killed_between_confirm_and_commit_resends_and_books_once(
    harness: Harness,
) -> None:
    ids = harness.enqueue(range(1, 21))

    def crash(result: PublishResult) -> None:
        assert len(result.confirmed) == 20  # the broker has them all ...
        raise KeyboardInterrupt("relay killed")  # ... and the relay dies before marking them

    with pytest.raises(KeyboardInterrupt):
        harness.relay(after_publish=crash)
    assert {m.status for m in harness.messages().values()} == {PENDING}

    assert harness.relay().sent == 20  # re-sent: nothing was marked sent
    stats = harness.consumer.drain()

    assert harness.store.booked_count() == 20
    if harness.queue_url:  # RabbitMQ had them: each arrives twice, is booked once
        assert stats.booked == 20 and stats.duplicates == 20
        assert set(harness.store.deliveries_seen().values()) == {2}
    else:  # the embedded queue shares the outbox's transaction: the crash undid the publish
        assert stats.booked == 20 and stats.duplicates == 0
    messages = harness.messages()
    assert all(messages[i].status == SENT and messages[i].acknowledged_at for i in ids)


def test_broker_down_during_a_burst_loses_nothing(harness: Harness) -> None:
    if harness.queue_url:
        down_url = f"amqp://guest:guest@127.0.0.1:{closed_port()}//?queue=unused"
    else:
        down_url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/nowhere"
    first = harness.enqueue(range(1, 11))
    assert harness.relay().sent == 10

    burst = harness.enqueue(range(11, 41))
    down = harness.publisher(down_url)
    for _ in range(3):
        totals = harness.relay(down)
        assert totals.outages == 1 and totals.sent == 0
    pending = [m for m in harness.messages().values() if m.status == PENDING]
    assert len(pending) == 30
    assert all(m.attempts == 0 for m in pending)  # an outage is not the record's fault

    late = harness.enqueue(range(41, 46))
    assert harness.relay().sent == 35  # the broker is back
    harness.consumer.drain()

    assert set(harness.store.booked()) == set(first + burst + late)
    assert set(harness.store.deliveries_seen().values()) == {1}


def test_record_rejected_every_time_ends_dead_and_listed(harness: Harness) -> None:
    harness.reject_rule = reject_towns({"370406099"})
    good = harness.enqueue(range(1, 6))
    bad = harness.enqueue([99], town_code="370406099")[0]

    for _ in range(FAST_RETRY.max_attempts + 2):
        harness.relay()
        harness.consumer.drain(quiet_polls=1, timeout=0.2)

    messages = harness.messages()
    assert messages[bad].status == DEAD
    assert messages[bad].attempts == FAST_RETRY.max_attempts
    assert "not linked" in (messages[bad].last_error or "")
    assert messages[bad].deliveries == FAST_RETRY.max_attempts  # re-sent after each rejection
    assert all(messages[i].status == SENT and messages[i].acknowledged_at for i in good)
    assert bad not in harness.store.booked()
    with harness.database.job() as session:
        dead, total = list_records(session, status="dead")
    assert [m.id for m in dead] == [bad] and total == 1


class _FailOne:
    """A publisher whose broker refuses one message every time (a poison message)."""

    def __init__(self, inner: Publisher, poison: str) -> None:
        self.inner = inner
        self.poison = poison

    def publish(self, messages: list[OutgoingMessage]) -> PublishResult:
        result = self.inner.publish([m for m in messages if m.message_id != self.poison])
        if any(m.message_id == self.poison for m in messages):
            result.failed[self.poison] = "nacked by broker"
        return result

    def close(self) -> None:
        self.inner.close()


def test_message_the_broker_refuses_goes_dead_after_n_tries(harness: Harness) -> None:
    ids = harness.enqueue(range(1, 4))
    publisher = _FailOne(harness.publisher(), ids[1])

    runs = [harness.relay(publisher) for _ in range(FAST_RETRY.max_attempts + 1)]

    messages = harness.messages()
    assert sum(r.dead for r in runs) == 1
    assert sum(r.failed for r in runs) == FAST_RETRY.max_attempts
    assert sum(r.sent for r in runs) == 2
    assert messages[ids[1]].status == DEAD and messages[ids[1]].last_error == "nacked by broker"
    assert messages[ids[0]].status == SENT and messages[ids[2]].status == SENT


def test_consumer_store_failure_releases_and_redelivers(harness: Harness) -> None:
    ids = harness.enqueue(range(1, 6))
    harness.relay()
    consumer = harness.consumer
    real_book = harness.store.book
    calls = {"n": 0}

    def failing_book(records: Any) -> dict[str, bool]:
        calls["n"] += 1
        if calls["n"] == 1:
            from sqlalchemy.exc import OperationalError

            raise OperationalError("INSERT", {}, Exception("disk full"))
        return real_book(records)

    harness.store.book = failing_book  # type: ignore[method-assign]
    if not harness.queue_url:
        consumer.subscriber.visibility_timeout = consumer.subscriber.visibility_timeout * 0  # type: ignore[attr-defined]
    first = consumer.poll(1.0)
    assert first.released == 5 and first.booked == 0
    consumer.drain()
    assert set(harness.store.booked()) == set(ids)


@pytest.mark.parametrize("queue_kind", ["database", "rabbitmq"])
def test_two_relays_on_postgresql_never_publish_a_record_twice(
    pg_committing_app: Flask, queue_kind: str, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    queue_url = "" if queue_kind == "database" else request.getfixturevalue("amqp_queue_url")
    database: Database = pg_committing_app.extensions["database"]
    harness = Harness(database, database.url, queue_url, TaxStore(f"sqlite:///{tmp_path / 't.db'}"))
    try:
        ids = set(harness.enqueue(range(1, 301)))
        published: Counter[str] = Counter()
        lock = threading.Lock()

        class Recording:
            def __init__(self) -> None:
                self.inner = open_publisher(
                    queue_url, database_url=database.url, engine=database.engine
                )

            def publish(self, messages: list[OutgoingMessage]) -> PublishResult:
                result = self.inner.publish(messages)
                with lock:
                    published.update(result.confirmed)
                return result

            def close(self) -> None:
                self.inner.close()

        relays = [Recording(), Recording()]
        errors: list[BaseException] = []

        def work(publisher: Recording) -> None:
            try:
                run_relay(database, publisher, settings=RelaySettings(batch=10), once=True)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(r,)) for r in relays]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for r in relays:
            r.close()

        assert not errors
        assert set(published) == ids
        assert max(published.values()) == 1
        assert {m.status for m in harness.messages().values()} == {SENT}
        harness.consumer.drain()
        assert harness.store.booked_count() == 300
        assert set(harness.store.deliveries_seen().values()) == {1}
    finally:
        harness.close()


def test_replay_resends_same_ids_and_tax_side_books_once(harness: Harness) -> None:
    from api.clock import today
    from api.payments.outbox.service import replay

    ids = harness.enqueue(range(1, 11))
    harness.enqueue([50], town_code="370406002")
    harness.relay()
    harness.consumer.drain()

    with harness.database.job() as session:
        marked = replay(session, since=today(), town_code="370406001")
    assert marked == 10
    assert all(
        m.acknowledged_at is None and m.status == PENDING
        for m in harness.messages().values()
        if m.id in ids
    )
    assert harness.relay().sent == 10
    stats = harness.consumer.drain()

    assert stats.duplicates == 10 and harness.store.booked_count() == 11
    messages = harness.messages()
    assert all(messages[i].deliveries == 2 and messages[i].acknowledged_at for i in ids)


def test_consumer_rejects_a_record_that_breaks_the_schema(harness: Harness) -> None:
    """A corrupted body on the queue is dead-lettered and reported, never booked."""
    [record_id] = harness.enqueue([1])
    with harness.database.job() as session:
        from api.payments.outbox.models import OutboxMessage

        message = session.get(OutboxMessage, record_id)
        assert message is not None
        record = message.record
        record["amount_fen"] = -1
        message.body = json.dumps(record)
    harness.relay()
    stats = harness.consumer.drain()

    assert stats.rejected == 1 and harness.store.booked_count() == 0
    assert harness.store.rejections()[0][1].startswith("schema: amount_fen")
    message = harness.messages()[record_id]
    assert message.ack_status == "rejected" and message.status == PENDING


def test_embedded_queue_redelivers_after_visibility_timeout(committing_app: Flask) -> None:
    database: Database = committing_app.extensions["database"]
    publisher = open_publisher("", database_url=database.url, engine=database.engine)
    subscriber = open_subscriber(
        "", database_url=database.url, engine=database.engine, visibility_timeout=0.2
    )
    body = json.dumps({"x": 1}).encode()
    publisher.publish([OutgoingMessage("m-1", body, {"schema_version": 1})])

    first = subscriber.receive(10, 1.0)
    assert [d.message_id for d in first] == ["m-1"] and first[0].delivery_count == 1
    assert subscriber.receive(10, 0.0) == []  # invisible while claimed
    again = subscriber.receive(10, 2.0)  # the consumer "died": it comes back
    assert [d.delivery_count for d in again] == [2]
    subscriber.ack(again)
    assert subscriber.receive(10, 0.3) == []


def test_http_ack_sink_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer's HTTP sink logs in as staff and re-logs in once on a 401."""
    from sandbox.tax.acks import HttpAckSink

    calls: list[tuple[str, Any]] = []

    class Response:
        def __init__(self, status: int, body: dict[str, Any]) -> None:
            self.status_code = status
            self._body = body

        def json(self) -> dict[str, Any]:
            return self._body

    statuses = iter([401, 200])

    def post(url: str, json: Any = None, headers: Any = None, timeout: Any = None) -> Response:
        calls.append((url, headers))
        if url.endswith("/auth/staff"):
            return Response(200, {"token": f"t{len(calls)}"})
        return Response(next(statuses), {})

    sink = HttpAckSink("http://api.test/", "tax", "pw")
    monkeypatch.setattr(sink._http, "post", post)
    sink.send([{"record_id": "r", "status": "booked"}])

    assert [c[0] for c in calls] == [
        "http://api.test/api/v1/auth/staff",
        "http://api.test/api/v1/tax/acknowledgements",
        "http://api.test/api/v1/auth/staff",
        "http://api.test/api/v1/tax/acknowledgements",
    ]
    assert calls[3][1] == {"Authorization": "Bearer t3"}


def test_embedded_queue_failure_in_a_later_batch_of_a_transaction_loses_and_repeats_nothing(
    committing_app: Flask, tmp_path: Any
) -> None:
    """Several batches share one transaction on the database queue: a failure in the second
    rolls back the first too (queue rows and marks alike), so every record is still pending,
    nothing is on the queue, and the next run sends each record exactly once."""
    database: Database = committing_app.extensions["database"]
    harness = Harness(database, database.url, "", TaxStore(f"sqlite:///{tmp_path / 't.db'}"))
    try:
        ids = set(harness.enqueue(range(1, 13)))
        calls: list[list[str]] = []

        def crash_in_second_batch(result: PublishResult) -> None:
            calls.append(result.confirmed)
            if len(calls) == 2:
                raise RuntimeError("relay died in the second batch")

        settings = RelaySettings(batch=5, retry=FAST_RETRY, transaction_batches=3)
        publisher = harness.publisher()
        with pytest.raises(RuntimeError, match="second batch"):
            run_relay(
                database,
                publisher,
                settings=settings,
                once=True,
                after_publish=crash_in_second_batch,
            )
        assert [len(c) for c in calls] == [5, 5]
        assert not set(calls[0]) & set(calls[1])
        assert {m.status for m in harness.messages().values()} == {PENDING}
        assert all(m.deliveries == 0 for m in harness.messages().values())
        assert harness.consumer.subscriber.receive(100, 0.0) == []  # nothing was queued

        totals = run_relay(database, publisher, settings=settings, once=True)
        assert totals.sent == 12 and totals.batches == 3
        stats = harness.consumer.drain()
        assert stats.booked == 12 and stats.duplicates == 0
        assert set(harness.store.booked()) == ids
        assert set(harness.store.deliveries_seen().values()) == {1}
        messages = harness.messages()
        assert all(m.status == SENT and m.deliveries == 1 for m in messages.values())
    finally:
        harness.close()


def test_pipelined_relay_crash_keeps_confirmed_batches_and_releases_the_claimed_one(
    pg_committing_app: Flask, amqp_queue_url: str, tmp_path: Any
) -> None:
    """PostgreSQL with RabbitMQ overlaps one batch's database work with the next batch's
    publishing, so while batch 2 is published batch 1's marks are being committed and batch 3
    is already claimed (locked). A crash after batch 2's confirms: batch 1 stays sent, batch 2
    (confirmed, not marked) and batch 3 (claimed, never published) are released and pending,
    and the next run sends the rest; only batch 2 reaches the tax side twice."""
    database: Database = pg_committing_app.extensions["database"]
    harness = Harness(
        database, database.url, amqp_queue_url, TaxStore(f"sqlite:///{tmp_path / 't.db'}")
    )
    try:
        ids = harness.enqueue(range(1, 26))
        batches: list[list[str]] = []

        def crash_after_second_batch(result: PublishResult) -> None:
            batches.append(result.confirmed)
            if len(batches) == 2:
                raise RuntimeError("relay died after the second batch's confirms")

        settings = RelaySettings(batch=5, retry=FAST_RETRY)
        publisher = harness.publisher()
        with pytest.raises(RuntimeError, match="second batch"):
            run_relay(
                database,
                publisher,
                settings=settings,
                once=True,
                after_publish=crash_after_second_batch,
            )
        first, second = batches
        assert first == ids[:5] and second == ids[5:10]
        status = {i: m.status for i, m in harness.messages().items()}
        assert {status[i] for i in first} == {SENT}
        assert {status[i] for i in ids[5:]} == {PENDING}  # nothing left locked or half-done

        totals = run_relay(database, publisher, settings=settings, once=True)
        assert totals.sent == 20 and totals.outages == 0
        stats = harness.consumer.drain()
        assert stats.booked == 25 and stats.duplicates == 5
        seen = harness.store.deliveries_seen()
        assert {i for i, n in seen.items() if n == 2} == set(second)
        assert all(seen[i] == 1 for i in ids if i not in second)
        messages = harness.messages()
        assert all(m.status == SENT and m.deliveries == 1 for m in messages.values())
    finally:
        harness.close()


def test_pipelined_and_sequential_relays_publish_the_same(
    pg_committing_app: Flask, amqp_queue_url: str, tmp_path: Any
) -> None:
    """`RelaySettings.overlap` changes when the database work happens, not what is sent:
    same records, same order, each once, with a short last batch."""
    database: Database = pg_committing_app.extensions["database"]
    harness = Harness(
        database, database.url, amqp_queue_url, TaxStore(f"sqlite:///{tmp_path / 't.db'}")
    )
    try:
        order: list[str] = []

        class Recording:
            def __init__(self, inner: Publisher) -> None:
                self.inner = inner

            def publish(self, messages: list[OutgoingMessage]) -> PublishResult:
                order.extend(m.message_id for m in messages)
                return self.inner.publish(messages)

            def close(self) -> None:
                self.inner.close()

        publisher = Recording(harness.publisher())
        for overlap in (True, False):
            order.clear()
            ids = harness.enqueue(range(100 if overlap else 200, (100 if overlap else 200) + 23))
            settings = RelaySettings(batch=5, retry=FAST_RETRY, overlap=overlap)
            totals = run_relay(database, publisher, settings=settings, once=True)
            assert totals.sent == 23 and totals.batches == 5
            assert order == ids
        stats = harness.consumer.drain()
        assert stats.booked == 46 and stats.duplicates == 0
    finally:
        harness.close()
