"""`ChannelNotification` 回调日志: every callback as received, kept before anything else runs.

The raw part (channel, path, body, headers, remote address, time) is written once in its own
committed transaction, so even a notification whose processing later fails is on record; the
outcome columns are filled exactly once afterwards (a conditional update from `received`; a
row the worker's sweep finds to repeat a later, applied row then says `superseded`), and
nothing ever deletes a row. No row stays `received`: the payments worker ends those left past
a few minutes (`notify.sweep_unfinished`). Finance reconciles against this table (DESIGN.md "Data").
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, utcnow


class NotificationOutcome(StrEnum):
    RECEIVED = "received"  # stored, not yet processed (or processing crashed: see reason)
    APPLIED = "applied"  # changed state (paid, duplicate payment, closed, refund result)
    DUPLICATE = "duplicate"  # a repeat of something already applied: nothing changed
    REJECTED = "rejected"  # forged, mismatched, unknown or unparseable: nothing changed
    IGNORED = "ignored"  # genuine but nothing to do (pending status, close of a paid order)
    # left unfinished (the database dropped), then found by the sweep to repeat a later row
    # that applied it; `detail` names that row (`#<id>`)
    SUPERSEDED = "superseded"


class ChannelNotification(Base):
    __tablename__ = "channel_notifications"
    __table_args__ = (
        Index("ix_channel_notifications_received_at", "received_at"),
        Index("ix_channel_notifications_outcome_received_at", "outcome", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # wechat | alipay
    path: Mapped[str] = mapped_column(String(128))
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    remote_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Filled once the notification has been verified and handled.
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # payment|refund|closed…
    signature_valid: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default=NotificationOutcome.RECEIVED)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    out_trade_no: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    out_refund_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_orders.id"), nullable=True, index=True
    )
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def body_text(self) -> str:
        """The body as text for people (UTF-8; GBK Alipay bodies are percent-encoded ASCII)."""
        return self.raw_body.decode("utf-8", errors="replace")
