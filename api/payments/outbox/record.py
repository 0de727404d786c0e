"""The confirmation record 税务对账记录: what one contribution event looks like on the queue.

The record is the contract with the tax side, so its shape is pinned by a JSON Schema
(`record.schema.json`, draft 2020-12, shown in docs/tax-queue.md) and a `schema_version`.
Every record is validated when it is built: the schema check costs about 0.25 ms a record
(measured, docs/tax-queue.md), small next to the payment transaction it rides in (a household
order has a handful of contributions; enqueue's own flush costs more), and it keeps a record
the tax side would refuse from ever being committed with the payment. Changing a field means a new
`schema_version` and a new schema file, never an edit of this one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator

from api.clock import BEIJING

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("record.schema.json")

PAID = "contribution.paid"
REVERSED = "contribution.reversed"

EventName = Literal["contribution.paid", "contribution.reversed"]
Insurance = Literal["medical", "pension"]
Source = Literal["wechat", "alipay", "agent", "counter", "government"]


@dataclass(frozen=True)
class ContributionEvent:
    """What payments-core knows about a paid or reversed contribution (缴费记录).

    Amounts in fen; `paid_at` a timezone-aware instant. For a reversal, `reverses_message_id`
    may be left out: the record of the paid event of the same contribution is looked up.
    """

    event: EventName
    contribution_id: int
    year: int
    insurance: Insurance
    id_number: str
    name: str
    household_id: int
    household_no: str
    town_code: str
    village_code: str
    pension_tier: int | None
    amount_fen: int
    government_pays_fen: int
    subsidy_fen: int
    source: Source
    channel_transaction_id: str | None
    out_trade_no: str | None
    paid_at: datetime
    late: bool
    benefit_start: date
    reverses_message_id: str | None = None
    reason: str | None = None


class RecordInvalid(ValueError):
    """A record that breaks the published schema: a bug in the caller, never a retry."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("tax record breaks its schema: " + "; ".join(errors))


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=1)
def validator() -> Draft202012Validator:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(record: Any) -> list[str]:
    """Every way `record` breaks the schema, as short English strings (empty: valid).

    Messages name the field but never echo its value: values include ID numbers.
    """
    errors = []
    for error in sorted(validator().iter_errors(record), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(record)"
        errors.append(f"{where}: {error.validator} {_safe_expectation(error.validator_value)}")
    return errors


def _safe_expectation(value: Any) -> str:
    if isinstance(value, dict | list):
        return "check failed"
    return repr(value)[:80]


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        raise RecordInvalid(["paid_at: naive datetime"])
    return value.astimezone(BEIJING).isoformat(timespec="seconds")


def build_record(
    event: ContributionEvent,
    *,
    record_id: str | None = None,
    occurred_at: datetime | None = None,
    reverses: str | None = None,
) -> dict[str, Any]:
    """The record for `event`, validated; `record_id` defaults to a new uuid4."""
    record: dict[str, Any] = {
        "id": record_id or str(uuid.uuid4()),
        "schema_version": SCHEMA_VERSION,
        "event": event.event,
        "occurred_at": _instant(occurred_at or datetime.now(UTC)),
        "contribution_id": event.contribution_id,
        "year": event.year,
        "insurance": event.insurance,
        "id_number": event.id_number,
        "name": event.name,
        "household_id": event.household_id,
        "household_no": event.household_no,
        "town_code": event.town_code,
        "village_code": event.village_code,
        "pension_tier": event.pension_tier,
        "amount_fen": event.amount_fen,
        "government_pays_fen": event.government_pays_fen,
        "subsidy_fen": event.subsidy_fen,
        "source": event.source,
        "channel_transaction_id": event.channel_transaction_id,
        "out_trade_no": event.out_trade_no,
        "paid_at": _instant(event.paid_at),
        "late": event.late,
        "benefit_start": event.benefit_start.isoformat(),
        "reverses": reverses if reverses is not None else event.reverses_message_id,
        "reason": event.reason,
    }
    for key in ("amount_fen", "government_pays_fen", "subsidy_fen"):
        # bool is an int subclass and floats must never carry money: refuse both outright.
        if type(record[key]) is not int:
            raise RecordInvalid([f"{key}: must be an int (fen)"])
    errors = schema_errors(record)
    if errors:
        raise RecordInvalid(errors)
    return record


def encode(record: dict[str, Any]) -> bytes:
    """The wire form: compact UTF-8 JSON (Chinese names unescaped), keys in schema order."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
