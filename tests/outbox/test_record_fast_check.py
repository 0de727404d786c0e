"""The fast check (`plainly_valid`) never lets through a record the schema refuses.

`build_record` skips the jsonschema walk when `plainly_valid` says yes, so the fast check must
be sound: over many generated records — valid ones and ones broken field by field — whenever
it answers True the published schema must accept the record too; and it must answer True for
what `build_record` builds from valid events (else the fast path would never be taken).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from jsonschema import Draft202012Validator

from api.payments.outbox.record import (
    PAID,
    REVERSED,
    ContributionEvent,
    build_record,
    load_schema,
    plainly_valid,
)

SCHEMA = Draft202012Validator(load_schema())

# Values each field may be mutated to: right and wrong types, edges, near-miss patterns.
BAD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    260.5,
    "",
    "x",
    "X" * 65,
    "X" * 201,
    "2020-01-01",
    "2020-01-01\n",
    "2019-11-05T10:30:00+08:00",
    "2019-11-05T10:30:00+08:00\n",
    "2019-11-05 10:30:00",
    "37040619900101123X",
    "37040619900101123x",
    "37040619900101123X\n",
    str(uuid.uuid4()),
    str(uuid.uuid4()).upper(),
    str(uuid.uuid1()),
    "medical",
    "pension",
    "wechat",
    "cash",
    PAID,
    REVERSED,
    2000,
    2101,
    [],
    {},
]


def _event(rng: random.Random, n: int) -> ContributionEvent:
    insurance = rng.choice(["medical", "pension"])
    reversed_ = rng.random() < 0.3
    source = rng.choice(["wechat", "alipay", "agent", "counter", "government"])
    online = source in ("wechat", "alipay")
    return ContributionEvent(
        event=REVERSED if reversed_ else PAID,
        contribution_id=n + 1,
        year=rng.randint(2000, 2100),
        insurance=insurance,  # type: ignore[arg-type]
        id_number=f"{rng.randrange(10**17):017d}{rng.choice('0123456789X')}",
        name=rng.choice(["张三", "李", "欧阳娜娜", "X" * 64]),
        household_id=rng.randint(1, 10**9),
        household_no=f"H{rng.randrange(10**6):06d}",
        town_code="370406001",
        village_code="370406001001",
        pension_tier=rng.choice([100, 300, 5000]) if insurance == "pension" else None,
        amount_fen=rng.randint(0, 10**6),
        government_pays_fen=rng.choice([0, 0, 18000]),
        subsidy_fen=rng.choice([0, 3000]),
        source=source,  # type: ignore[arg-type]
        channel_transaction_id=f"4200{n:020d}" if online or rng.random() < 0.5 else None,
        out_trade_no=f"SSI{n:012d}" if online or rng.random() < 0.5 else None,
        paid_at=datetime(2019, 11, 5, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**8)),
        late=rng.random() < 0.2,
        benefit_start=date(2020, 1, 1) + timedelta(days=rng.randrange(400)),
        reverses_message_id=str(uuid.uuid4()) if reversed_ else None,
        reason="refund" if reversed_ else None,
    )


def test_valid_records_take_the_fast_path() -> None:
    rng = random.Random(20200101)
    for n in range(500):
        record = build_record(_event(rng, n))
        assert SCHEMA.is_valid(record)
        assert plainly_valid(record), record["id"]


def test_fast_check_never_accepts_what_the_schema_refuses() -> None:
    rng = random.Random(7)
    refused = accepted = 0
    for n in range(40):
        record = build_record(_event(rng, n))
        for field in list(record):
            for value in BAD_VALUES:
                mutated = {**record, field: value}
                fast = plainly_valid(mutated)
                if fast:
                    accepted += 1
                    assert SCHEMA.is_valid(mutated), (field, value)
                elif not SCHEMA.is_valid(mutated):
                    refused += 1
        missing = dict(record)
        del missing[rng.choice(list(record))]
        assert not plainly_valid(missing)
        assert not plainly_valid({**record, "extra": 1})
    assert refused > 1000 and accepted > 100  # both sides were actually exercised


def test_unsure_records_go_to_the_full_check() -> None:
    # The schema's `$` allows a trailing newline; the fast check refuses it, the schema decides.
    record = build_record(_event(random.Random(1), 1))
    odd = {**record, "benefit_start": record["benefit_start"] + "\n"}
    assert not plainly_valid(odd)
    assert SCHEMA.is_valid(odd)
