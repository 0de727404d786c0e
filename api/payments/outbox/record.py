"""The confirmation record 税务对账记录: what one contribution event looks like on the queue.

The record is the contract with the tax side, so its shape is pinned by a JSON Schema
(`record.schema.json`, draft 2020-12, shown in docs/tax-queue.md) and a `schema_version`.
Every record is validated when it is built (a straight-line fast check, `plainly_valid`, that
hands anything it is unsure of to the full jsonschema check), and it keeps a record the tax
side would refuse from ever being committed with the payment. Changing a field means a new
`schema_version` and a new schema file, never an edit of this one.
"""

from __future__ import annotations

import json
import re
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
    if not plainly_valid(record):
        # The full schema check: the judge of anything the fast check is unsure of, and the
        # source of the error messages.
        errors = schema_errors(record)
        if errors:
            raise RecordInvalid(errors)
    return record


# The fast check --------------------------------------------------------------------------------
#
# jsonschema's generic walk of this schema costs ~0.7 ms a record, the largest single cost of a
# payment notification once the SQL was batched (bench/notify_throughput.py). `plainly_valid`
# states the same schema as straight-line Python, about 50× cheaper. It is CONSERVATIVE: it
# answers True only for a record every rule of `record.schema.json` accepts, and it is stricter
# where that is simpler (exact `int`/`str` types, full matches: the schema's `$` would allow a
# trailing newline); anything it refuses goes to the full jsonschema check, which decides and
# words the errors. So a record is never committed that the schema refuses.
# tests/outbox/test_record_fast_check.py holds it to that over many generated and mutated
# records: plainly_valid(r) implies the schema accepts r, and it accepts what build_record
# builds from valid events. A new schema_version means a new fast check too.

_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9X]")


@lru_cache(maxsize=1)
def _keys() -> frozenset[str]:
    # The schema requires every property it names and allows no other.
    return frozenset(load_schema()["properties"])


_SOURCES = frozenset({"wechat", "alipay", "agent", "counter", "government"})


def _text(value: Any, low: int, high: int) -> bool:
    return type(value) is str and low <= len(value) <= high


def _count(value: Any, low: int) -> bool:
    return type(value) is int and value >= low


def plainly_valid(record: Any) -> bool:
    """True only if `record` certainly satisfies schema version 1 (see the note above)."""
    r = record
    if type(r) is not dict or r.keys() != _keys():
        return False
    event, insurance, source = r["event"], r["insurance"], r["source"]
    tier, reverses, reason = r["pension_tier"], r["reverses"], r["reason"]
    out_trade_no, transaction_id = r["out_trade_no"], r["channel_transaction_id"]
    if event == PAID:
        if reverses is not None or reason is not None:
            return False
    elif event == REVERSED:
        if not (type(reverses) is str and _UUID4.fullmatch(reverses) and _text(reason, 1, 200)):
            return False
    else:
        return False
    if insurance == "pension":
        if not _count(tier, 1):
            return False
    elif insurance != "medical" or tier is not None:
        return False
    if type(source) is not str or source not in _SOURCES:
        return False
    if out_trade_no is None:
        if source in ("wechat", "alipay"):
            return False
    elif not _text(out_trade_no, 0, 64):
        return False
    if transaction_id is not None and not _text(transaction_id, 0, 64):
        return False
    year = r["year"]
    return bool(
        type(r["id"]) is str
        and _UUID4.fullmatch(r["id"])
        and type(r["schema_version"]) is int
        and r["schema_version"] == 1
        and type(r["occurred_at"]) is str
        and _INSTANT.fullmatch(r["occurred_at"])
        and _count(r["contribution_id"], 1)
        and type(year) is int
        and 2000 <= year <= 2100
        and type(r["id_number"]) is str
        and _ID_NUMBER.fullmatch(r["id_number"])
        and _text(r["name"], 1, 64)
        and _count(r["household_id"], 1)
        and _text(r["household_no"], 1, 32)
        and _text(r["town_code"], 1, 12)
        and _text(r["village_code"], 1, 16)
        and _count(r["amount_fen"], 0)
        and _count(r["government_pays_fen"], 0)
        and _count(r["subsidy_fen"], 0)
        and type(r["paid_at"]) is str
        and _INSTANT.fullmatch(r["paid_at"])
        and type(r["late"]) is bool
        and type(r["benefit_start"]) is str
        and _DAY.fullmatch(r["benefit_start"])
    )


def encode(record: dict[str, Any]) -> bytes:
    """The wire form: compact UTF-8 JSON (Chinese names unescaped), keys in schema order."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
