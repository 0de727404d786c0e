"""Fixtures for the outbox: events, the real RabbitMQ (a unique queue per test, deleted after),
the embedded database queue, the tax-side consumer and a harness that drives them.

RabbitMQ tests skip only when the broker is unreachable AND `REQUIRE_RABBITMQ` is unset; `.ci/run`
sets it, so on CI a missing broker is a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from kombu import Connection
from sqlalchemy import select

from api.db import Database
from api.payments.outbox.models import OutboxMessage
from api.payments.outbox.record import ContributionEvent
from api.payments.outbox.relay import RelaySettings, RelayTotals, run_relay
from api.payments.outbox.service import (
    Acknowledgement,
    RetryPolicy,
    enqueue_contribution_event,
    record_acknowledgements,
)
from api.payments.outbox.transports import Publisher, open_publisher, open_subscriber
from api.payments.outbox.transports.amqp import Topology
from sandbox.tax.consumer import RejectRule, TaxConsumer
from sandbox.tax.store import TaxStore

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
FAST_RETRY = RetryPolicy(max_attempts=3, base_seconds=0, cap_seconds=0)


def _require_rabbitmq() -> bool:
    return os.environ.get("REQUIRE_RABBITMQ", "") not in ("", "0", "false")


def make_event(contribution_id: int, **overrides: Any) -> ContributionEvent:
    """A valid paid-contribution event; the ID number is synthetic (pattern only)."""
    pension = overrides.get("insurance") == "pension"
    values: dict[str, Any] = {
        "event": "contribution.paid",
        "contribution_id": contribution_id,
        "year": 2020,
        "insurance": "medical",
        "id_number": f"370406199001{contribution_id % 100000:05d}X",
        "name": "张三",
        "household_id": 1000 + contribution_id,
        "household_no": f"H{contribution_id:06d}",
        "town_code": "370406001",
        "village_code": "370406001001",
        "pension_tier": 300 if pension else None,
        "amount_fen": 30000 if pension else 26000,
        "government_pays_fen": 0,
        "subsidy_fen": 3000 if pension else 0,
        "source": "wechat",
        "channel_transaction_id": f"42000000{contribution_id:010d}",
        "out_trade_no": f"SSI2019{contribution_id:010d}",
        "paid_at": datetime(2019, 11, 5, 2, 30, tzinfo=UTC),
        "late": False,
        "benefit_start": date(2020, 1, 1),
    }
    values.update(overrides)
    return ContributionEvent(**values)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    try:
        with Connection(AMQP_URL, connect_timeout=3) as conn:
            conn.connect()
    except Exception as exc:
        if _require_rabbitmq():
            pytest.fail(f"RabbitMQ required but unreachable at {AMQP_URL}: {exc}")
        pytest.skip(f"RabbitMQ unreachable: {exc}")
    return AMQP_URL


@pytest.fixture
def amqp_queue_url(rabbitmq_url: str) -> Iterator[str]:
    """A queue URL with a queue name of its own; exchanges and queues deleted afterwards."""
    name = f"test.tax.{uuid.uuid4().hex[:12]}"
    yield f"{rabbitmq_url}?queue={name}"
    with Connection(rabbitmq_url) as conn:
        conn.connect()
        for queue_type in ("quorum", "classic"):
            topology = Topology(name)
            topology.queue_type = queue_type
            try:
                topology.delete(conn)
                break
            except Exception:
                continue


@pytest.fixture(params=["database", "rabbitmq"])
def queue_url(request: pytest.FixtureRequest) -> str:
    """Both transports: the embedded database queue ("") and the real RabbitMQ."""
    if request.param == "database":
        return ""
    url: str = request.getfixturevalue("amqp_queue_url")
    return url


def closed_port() -> int:
    """A local port nothing listens on (a broker that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class ServiceAckSink:
    """Acknowledgements straight into the service, as the HTTP route does (one job each)."""

    def __init__(self, database: Database, policy: RetryPolicy) -> None:
        self.database = database
        self.policy = policy
        self.outcomes: list[dict[str, str]] = []

    def send(self, acks: list[dict[str, Any]]) -> None:
        with self.database.job() as session:
            self.outcomes += record_acknowledgements(
                session,
                [
                    Acknowledgement(
                        record_id=a["record_id"],
                        status=a["status"],
                        duplicate=a.get("duplicate", False),
                        reason=a.get("reason"),
                        tax_ref=a.get("tax_ref"),
                    )
                    for a in acks
                ],
                received_from="staff:tax-test",
                policy=self.policy,
            )


@dataclass
class Harness:
    database: Database
    database_url: str
    queue_url: str
    store: TaxStore
    retry: RetryPolicy = FAST_RETRY
    reject_rule: RejectRule | None = None
    publishers: list[Publisher] = field(default_factory=list)
    _consumer: TaxConsumer | None = None

    def publisher(self, queue_url: str | None = None) -> Publisher:
        publisher = open_publisher(
            self.queue_url if queue_url is None else queue_url,
            database_url=self.database_url,
            engine=self.database.engine,
        )
        self.publishers.append(publisher)
        return publisher

    @property
    def consumer(self) -> TaxConsumer:
        if self._consumer is None:
            subscriber = open_subscriber(
                self.queue_url, database_url=self.database_url, engine=self.database.engine
            )
            self._consumer = TaxConsumer(
                subscriber,
                self.store,
                ServiceAckSink(self.database, self.retry),
                reject_rule=self.reject_rule,
            )
        return self._consumer

    def enqueue(self, contribution_ids: range | list[int], **overrides: Any) -> list[str]:
        with self.database.job() as session:
            return [
                enqueue_contribution_event(session, make_event(cid, **overrides)).id
                for cid in contribution_ids
            ]

    def relay(self, publisher: Publisher | None = None, **kwargs: Any) -> RelayTotals:
        return run_relay(
            self.database,
            publisher or self.publisher(),
            settings=RelaySettings(batch=kwargs.pop("batch", 50), retry=self.retry),
            once=True,
            **kwargs,
        )

    def messages(self) -> dict[str, OutboxMessage]:
        with self.database.job() as session:
            return {m.id: m for m in session.scalars(select(OutboxMessage))}

    def close(self) -> None:
        for p in self.publishers:
            p.close()
        if self._consumer is not None:
            self._consumer.subscriber.close()
        self.store.close()


@pytest.fixture
def harness(committing_app: Flask, queue_url: str, tmp_path: Path) -> Iterator[Harness]:
    database: Database = committing_app.extensions["database"]
    h = Harness(
        database=database,
        database_url=database.url,
        queue_url=queue_url,
        store=TaxStore(f"sqlite:///{tmp_path / 'tax.sqlite3'}"),
    )
    yield h
    h.close()
