"""The notification floor (bench/notify_floor.py) must do the product route's work, or the
benchmark's comparison with it means nothing: for two like orders, one paid through
`POST /api/v1/payments/notify/wechat` and one through the floor route, the rows written must
match column for column (ids, times and the order's own numbers aside)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from api.payments.channels import wechat_v2_protocol as proto
from api.payments.outbox.models import RECORD_PURPOSE
from api.pii.keyring import current as current_keyring
from tests.conftest import _require_pg

# Differ between two orders by construction: identities, times, and who pays.
_PER_ORDER = {
    "id",
    "order_id",
    "order_item_id",
    "person_id",
    "household_id",
    "contribution_id",
    "out_trade_no",
    "channel_transaction_id",
    "transaction_id",
    "created_at",
    "occurred_at",
    "received_at",
    "processed_at",
    "updated_at",
    "next_attempt_at",
    "at",
    "subject",
    "id_number",
    "id_number_index",
    "name",
    "household_no",
    "raw_body",
    "headers",
    "path",
    "remote_addr",
    "content_type",
}


@pytest.fixture
def bench_database() -> Iterator[str]:
    """A database of its own: the benchmark's `_populate` drops and creates every table."""
    from bench.common import pg_available, pg_database

    if not pg_available():
        if _require_pg():
            pytest.fail("PostgreSQL required but unreachable")
        pytest.skip("PostgreSQL unreachable")
    with pg_database("ssi_floor") as url:
        yield url


def _rows(conn: Any, table: str, where: str, order_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(text(f"SELECT * FROM {table} WHERE {where} ORDER BY id"), {"o": order_id})
    return [{k: v for k, v in row._mapping.items() if k not in _PER_ORDER} for row in rows]


def _records(conn: Any, order_id: int) -> list[dict[str, Any]]:
    bodies = conn.execute(
        text(
            "SELECT m.body FROM outbox_messages m JOIN contributions c ON c.id = "
            "m.contribution_id WHERE c.order_id = :o ORDER BY c.order_item_id"
        ),
        {"o": order_id},
    ).scalars()
    ring = current_keyring()  # the bodies are stored encrypted (api/pii)
    return [
        {
            k: v
            for k, v in json.loads(ring.decrypt(b, RECORD_PURPOSE)).items()
            if k not in _PER_ORDER
        }
        for b in bodies
    ]


def test_floor_route_writes_what_the_product_route_writes(
    bench_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.pii import keyring

    # The benchmark installs its own keys in this process; later tests need the suite's back.
    monkeypatch.setattr(keyring, "_installed", keyring._installed)
    from bench.notify_floor import FLOOR_PATH
    from bench.notify_throughput import NOTIFY_PATH, _bodies, _populate, make_app

    bodies = _bodies(_populate(bench_database, 2))
    monkeypatch.setenv("DATABASE_URL", bench_database)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    app = make_app()
    client = app.test_client()
    for path, body in ((NOTIFY_PATH, bodies[0]), (FLOOR_PATH, bodies[1])):
        reply = client.post(path, data=body, content_type="text/xml")
        assert reply.data == proto.SUCCESS_XML, path
    app.extensions["database"].dispose()

    engine = create_engine(bench_database)
    with engine.connect() as conn:
        log = conn.execute(text("SELECT id, order_id FROM channel_notifications ORDER BY id"))
        assert [order for _, order in log] == [1, 2]
        for table, where in (
            ("payment_orders", "id = :o"),
            ("payment_order_items", "order_id = :o"),
            ("contributions", "order_id = :o"),
            ("payment_order_events", "order_id = :o"),
            ("channel_notifications", "order_id = :o"),
        ):
            product, floor = _rows(conn, table, where, 1), _rows(conn, table, where, 2)
            assert product and product == floor, table
        assert len(_records(conn, 1)) == 3
        assert _records(conn, 1) == _records(conn, 2)
        audit = conn.execute(
            text("SELECT action, outcome, detail::text FROM audit_events ORDER BY id")
        ).all()
        assert len(audit) == 2 and audit[0] == audit[1]
    engine.dispose()
