"""Outbox models: `OutboxMessage` 税务对账记录 (one confirmation record per contribution event,
written in the payment's own transaction), `TaxAcknowledgement` 税务回执 (every acknowledgement
the tax side sent back, append-only) and `QueueMessage` (the embedded database queue that stands
in for RabbitMQ when `QUEUE_URL` is empty).

No foreign key to the payments tables: this revision (`0002_outbox`) comes before them, and the
outbox must keep a record even if a contribution row is later archived.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, utcnow
from api.pii.types import EncryptedText

PENDING = "pending"
SENT = "sent"
DEAD = "dead"
STATUSES = (PENDING, SENT, DEAD)

ACK_BOOKED = "booked"
ACK_REJECTED = "rejected"
# One purpose for the record's ciphertext in the outbox and in the embedded queue: the relay's
# database-queue path copies the stored bytes from one to the other in SQL (relay.py).
RECORD_PURPOSE = "outbox.record"


class OutboxMessage(Base):
    """One record for the tax side, and where its delivery stands.

    `status`: pending (to publish, at `next_attempt_at`) → sent (the broker confirmed it) or
    dead (publishing or booking failed `attempts` times; listed, never dropped). The tax
    side's acknowledgement is kept apart from `status` (`acknowledged_at`, `ack_status`):
    "sent" means the broker has it, "acknowledged" means the tax side booked it.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # Exactly one record per contribution event: a second enqueue is a bug, not a retry.
        UniqueConstraint("contribution_id", "event"),
        # Partial indexes stay as small as the work they serve (due rows, unacknowledged rows),
        # and the relay's mark-sent touches fewer index entries (bench/relay.py).
        Index(
            "ix_outbox_messages_due",
            "next_attempt_at",
            "created_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_outbox_messages_unacknowledged",
            "sent_at",
            postgresql_where=text("status = 'sent' AND acknowledged_at IS NULL"),
            sqlite_where=text("status = 'sent' AND acknowledged_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the record id (uuid4)
    event: Mapped[str] = mapped_column(String(32))  # contribution.paid | contribution.reversed
    contribution_id: Mapped[int] = mapped_column(BigInteger)  # served by the unique key
    schema_version: Mapped[int] = mapped_column(Integer)
    # The record as published: compact UTF-8 JSON, frozen at enqueue, so every delivery and
    # replay sends the very same bytes (and the relay neither parses nor re-serialises it).
    # Stored encrypted (api.pii): it carries the resident's full ID number and name, which
    # the tax side needs; the relay reads it decrypted and publishes it over the broker (TLS).
    body: Mapped[str] = mapped_column(EncryptedText(RECORD_PURPOSE))
    # Copied out of the record for replay, export and listing filters.
    year: Mapped[int] = mapped_column(Integer)
    insurance: Mapped[str] = mapped_column(String(16))
    town_code: Mapped[str] = mapped_column(String(12))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed publishes + rejections
    deliveries: Mapped[int] = mapped_column(Integer, default=0)  # confirmed publishes
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    first_acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ack_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    ack_detail: Mapped[str | None] = mapped_column(Text, nullable=True)

    @property
    def record(self) -> dict[str, Any]:
        """The record as a dict (parsed from `body`)."""
        record: dict[str, Any] = json.loads(self.body)
        return record


class TaxAcknowledgement(Base):
    """税务回执: one acknowledgement as received (booked or rejected); append-only."""

    __tablename__ = "tax_acknowledgements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("outbox_messages.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # booked | rejected
    duplicate: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    tax_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    booked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    received_from: Mapped[str] = mapped_column(String(64))  # "staff:<username>"


class QueueMessage(Base):
    """The embedded queue (no broker): one row per delivery, read by the same consumer code.

    A consumer claims ready rows by pushing `visible_at` forward (the visibility timeout); a
    consumer that dies without acknowledging lets them reappear. Acknowledged rows are
    deleted, as a broker would; rejected rows stay with `dead_at` set (the dead-letter queue).
    """

    __tablename__ = "queue_messages"
    __table_args__ = (Index("ix_queue_messages_ready", "topic", "dead_at", "visible_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # delivery order
    topic: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The queue lives in the API's database: its copies of the records are encrypted too.
    body: Mapped[str] = mapped_column(EncryptedText(RECORD_PURPOSE))
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    visible_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivery_count: Mapped[int] = mapped_column(Integer, default=0)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dead_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
