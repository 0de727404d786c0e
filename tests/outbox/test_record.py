"""The record and its enqueueing: schema, money as int fen, one record per event, in the
caller's transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from api.payments.outbox import delivery_status, enqueue_contribution_event
from api.payments.outbox.models import OutboxMessage
from api.payments.outbox.record import (
    SCHEMA_VERSION,
    RecordInvalid,
    build_record,
    encode,
    load_schema,
)
from tests.outbox.conftest import make_event


def test_schema_is_valid_draft_2020_12_and_pins_the_version() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    assert set(schema["required"]) == set(schema["properties"])


def test_record_carries_every_field_in_fen_and_beijing_time() -> None:
    record = build_record(make_event(5, insurance="pension"), record_id=None)

    Draft202012Validator(load_schema()).validate(record)
    assert record["schema_version"] == 1
    assert record["amount_fen"] == 30000 and record["subsidy_fen"] == 3000
    assert record["pension_tier"] == 300
    assert record["paid_at"] == "2019-11-05T10:30:00+08:00"  # 02:30 UTC
    assert record["benefit_start"] == "2020-01-01"
    assert record["reverses"] is None and record["reason"] is None
    wire = encode(record)
    assert "张三".encode() in wire  # UTF-8, not \\u escapes
    assert json.loads(wire) == record


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount_fen": -1}, "amount_fen"),
        ({"amount_fen": 260.0}, "amount_fen"),  # a float never carries money
        ({"amount_fen": True}, "amount_fen"),
        ({"pension_tier": 300}, "pension_tier"),  # medical has no tier
        ({"insurance": "pension", "pension_tier": None}, "pension_tier"),
        ({"id_number": "37040619900101123"}, "id_number"),
        ({"source": "cash"}, "source"),
        ({"event": "contribution.reversed", "reason": None}, "reverses"),
        ({"out_trade_no": None}, "out_trade_no"),  # a WeChat payment names its order
    ],
)
def test_invalid_events_are_refused(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordInvalid) as info:
        build_record(make_event(1, **overrides))
    assert any(e.startswith(field) for e in info.value.errors), info.value.errors
    assert "3704061990" not in str(info.value)  # never echoes an ID number


def test_naive_paid_at_is_refused() -> None:
    with pytest.raises(RecordInvalid):
        build_record(make_event(1, paid_at=datetime(2019, 11, 5, 10, 30)))


def test_enqueue_is_part_of_the_callers_transaction(session: Any) -> None:
    savepoint = session.begin_nested()
    message = enqueue_contribution_event(session, make_event(1))
    assert session.get(OutboxMessage, message.id) is not None  # flushed, visible in the tx
    savepoint.rollback()  # the payment transaction failed: no ghost record
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_one_record_per_contribution_event(session: Any) -> None:
    first = enqueue_contribution_event(session, make_event(1))
    assert first.status == "pending" and first.record["id"] == first.id
    with pytest.raises(IntegrityError), session.begin_nested():
        enqueue_contribution_event(session, make_event(1))


def test_reversal_finds_the_paid_record(session: Any) -> None:
    paid = enqueue_contribution_event(session, make_event(3))
    reversal = enqueue_contribution_event(
        session, make_event(3, event="contribution.reversed", reason="退款")
    )
    assert reversal.record["reverses"] == paid.id
    assert reversal.record["reason"] == "退款"
    with pytest.raises(RecordInvalid):  # nothing to reverse
        enqueue_contribution_event(
            session, make_event(4, event="contribution.reversed", reason="退款")
        )


def test_delivery_status_per_contribution(session: Any) -> None:
    paid = enqueue_contribution_event(session, make_event(1))
    enqueue_contribution_event(session, make_event(2))
    paid.status = "sent"
    paid.sent_at = paid.acknowledged_at = datetime.now(UTC)
    paid.ack_status = "booked"
    session.flush()

    status = delivery_status(session, [1, 2, 3])

    assert status[1].sent and status[1].acknowledged
    assert status[1].records[0].record_id == paid.id
    assert status[2].queued and not status[2].sent and not status[2].acknowledged
    assert not status[3].queued and status[3].records == ()
