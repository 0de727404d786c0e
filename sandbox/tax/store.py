"""The tax side's own books (税务端台账): a separate database, never the API's.

`tax_records` holds each booked record once, keyed by the record id (the de-duplication that
makes at-least-once delivery safe). `tax_acks` is the tax side's own outbox of
acknowledgements: a row is written in the same transaction as the booking (or the rejection)
and sent to the API afterwards, so an acknowledgement lost on the way (API down, consumer
killed) is sent again on the next poll instead of being forgotten.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from api.db import make_engine

metadata = MetaData()

tax_records = Table(
    "tax_records",
    metadata,
    Column("record_id", String(36), primary_key=True),
    Column("event", String(32), nullable=False),
    Column("contribution_id", BigInteger, nullable=False),
    Column("year", Integer, nullable=False),
    Column("insurance", String(16), nullable=False),
    Column("id_number", String(18), nullable=False),
    Column("name", String(64), nullable=False),
    Column("town_code", String(12), nullable=False),
    Column("village_code", String(16), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("government_pays_fen", BigInteger, nullable=False),
    Column("subsidy_fen", BigInteger, nullable=False),
    Column("source", String(16), nullable=False),
    Column("paid_at", String(40), nullable=False),
    Column("reverses", String(36), nullable=True),
    Column("payload", Text, nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False),
    Column("deliveries_seen", Integer, nullable=False, default=1),
)

tax_acks = Table(
    "tax_acks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # booked | rejected
    Column("duplicate", Boolean, nullable=False, default=False),
    Column("reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _row(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "record_id": r["id"],
        "event": r["event"],
        "contribution_id": r["contribution_id"],
        "year": r["year"],
        "insurance": r["insurance"],
        "id_number": r["id_number"],
        "name": r["name"],
        "town_code": r["town_code"],
        "village_code": r["village_code"],
        "amount_fen": r["amount_fen"],
        "government_pays_fen": r["government_pays_fen"],
        "subsidy_fen": r["subsidy_fen"],
        "source": r["source"],
        "paid_at": r["paid_at"],
        "reverses": r["reverses"],
        "payload": json.dumps(r, ensure_ascii=False),
        "booked_at": now,
        "deliveries_seen": 1,
    }


@dataclass(frozen=True)
class PendingAck:
    id: int
    record_id: str
    status: str
    duplicate: bool
    reason: str | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "record_id": self.record_id,
            "status": self.status,
            "duplicate": self.duplicate,
            "tax_ref": f"TAX-{self.record_id[:8]}" if self.status == "booked" else None,
            "booked_at": self.created_at.astimezone(UTC).isoformat(),
        }
        if self.reason:
            body["reason"] = self.reason
        return body


class TaxStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        metadata.create_all(self.engine)

    def book(self, records: Iterable[dict[str, Any]]) -> list[bool]:
        """Book every record not booked yet, in one transaction.

        Returns, per record given and in order, whether it was a duplicate (booked before, or
        earlier in the same batch). One acknowledgement is queued per distinct record id.
        """
        given = list(records)
        if not given:
            return []
        seen_in_batch: Counter[str] = Counter(r["id"] for r in given)
        now = _now()
        with self.engine.begin() as conn:
            known = set(
                conn.scalars(
                    select(tax_records.c.record_id).where(
                        tax_records.c.record_id.in_(list(seen_in_batch))
                    )
                )
            )
            firsts: dict[str, dict[str, Any]] = {}
            for r in given:
                if r["id"] not in known:
                    firsts.setdefault(r["id"], r)
            if firsts:
                conn.execute(insert(tax_records), [_row(r, now) for r in firsts.values()])
            # deliveries_seen counts every delivery: a new row starts at 1 (the insert above).
            increments: dict[int, list[str]] = {}
            for rid, n in seen_in_batch.items():
                extra = n if rid in known else n - 1
                if extra:
                    increments.setdefault(extra, []).append(rid)
            for extra, rids in increments.items():
                conn.execute(
                    update(tax_records)
                    .where(tax_records.c.record_id.in_(rids))
                    .values(deliveries_seen=tax_records.c.deliveries_seen + extra)
                )
            conn.execute(
                insert(tax_acks),
                [
                    {
                        "record_id": rid,
                        "status": "booked",
                        "duplicate": rid in known or n > 1,
                        "reason": None,
                        "created_at": now,
                    }
                    for rid, n in seen_in_batch.items()
                ],
            )
        out = []
        first_seen: set[str] = set()
        for r in given:
            out.append(r["id"] in known or r["id"] in first_seen)
            first_seen.add(r["id"])
        return out

    def reject(self, record_id: str, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(tax_acks).values(
                    record_id=record_id, status="rejected", reason=reason[:500], created_at=_now()
                )
            )

    def pending_acks(self, limit: int = 500) -> list[PendingAck]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tax_acks)
                .where(tax_acks.c.sent_at.is_(None))
                .order_by(tax_acks.c.id)
                .limit(limit)
            ).all()
        return [
            PendingAck(
                id=r.id,
                record_id=r.record_id,
                status=r.status,
                duplicate=bool(r.duplicate),
                reason=r.reason,
                created_at=r.created_at
                if r.created_at.tzinfo
                else r.created_at.replace(tzinfo=UTC),
            )
            for r in rows
        ]

    def mark_acks_sent(self, ids: list[int]) -> None:
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(update(tax_acks).where(tax_acks.c.id.in_(ids)).values(sent_at=_now()))

    def booked_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(tax_records)) or 0)

    def booked(self) -> dict[str, dict[str, Any]]:
        """Every booked record by id (tests and the sandbox's own inspection)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(tax_records.c.record_id, tax_records.c.payload)).all()
        return {r.record_id: json.loads(r.payload) for r in rows}

    def deliveries_seen(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tax_records.c.record_id, tax_records.c.deliveries_seen)
            ).all()
        return {r.record_id: int(r.deliveries_seen) for r in rows}

    def rejections(self) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tax_acks.c.record_id, tax_acks.c.reason).where(
                    tax_acks.c.status == "rejected"
                )
            ).all()
        return [(r.record_id, r.reason or "") for r in rows]

    def close(self) -> None:
        self.engine.dispose()
