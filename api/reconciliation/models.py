"""Reconciliation runs (对账批次), their difference items (差异/挂账) and each item's history.

A run is one channel's bill for one Beijing date; re-running the date updates that run (a
unique key says there is one) and adds only items not already there (a unique key per
channel, date, side and key), so nothing a person resolved is ever replaced. The raw bill is
kept with its SHA-256, size and fetch time, so a run can be re-done from exactly what the
channel sent.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, utcnow


class Outcome(StrEnum):
    """The outcome of one bill row or one of our records (the exact names of the API/CLI)."""

    MATCHED = "matched"
    MISSING_OURS = "missing_ours"  # 长款: the channel took money we do not show paid
    UNKNOWN_TRADE = "unknown_trade"  # a bill row whose out_trade_no is not ours
    MISSING_CHANNEL = "missing_channel"  # 短款: we show paid, the bill does not
    AMOUNT_MISMATCH = "amount_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    REFUND_MISSING_OURS = "refund_missing_ours"
    REFUND_MISSING_CHANNEL = "refund_missing_channel"
    REFUND_AMOUNT_MISMATCH = "refund_amount_mismatch"


OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)


class ItemStatus(StrEnum):
    OPEN = "open"  # in the suspense pool (挂账), waiting for finance
    RECHECK = "recheck"  # missing on the channel's bill: waits for the next day's bill
    PENDING_APPROVAL = "pending_approval"  # resolved with refund/write_off, checker to approve
    REFUND_PENDING = "refund_pending"  # refund approved and decided; waits for the channel
    RESOLVED = "resolved"


class Resolution(StrEnum):
    HEALED = "healed"
    MATCHED_MANUALLY = "matched_manually"
    REFUND = "refund"
    WRITE_OFF = "write_off"
    CARRIED_OVER = "carried_over"


MONEY_ACTIONS = (Resolution.REFUND, Resolution.WRITE_OFF)


class RunStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"


class ReconciliationRun(Base):
    __tablename__ = "reconciliation_runs"
    __table_args__ = (UniqueConstraint("channel", "bill_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    bill_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # channel | file
    bill_raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    bill_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bill_size: Mapped[int] = mapped_column(Integer, default=0)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    bill_rows: Mapped[int] = mapped_column(Integer, default=0)
    bill_total_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # payments (订单金额)
    bill_refund_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    bill_fee_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # net fees, apart
    our_total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    our_refund_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    runs: Mapped[int] = mapped_column(Integer, default=1)  # how many times it was (re-)run
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReconciliationItem(Base):
    """One difference (matched rows get none); open ones form the suspense pool (挂账)."""

    __tablename__ = "reconciliation_items"
    __table_args__ = (
        UniqueConstraint("channel", "bill_date", "side", "key"),
        Index("ix_reconciliation_items_status_type", "status", "type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    bill_date: Mapped[date] = mapped_column(Date)
    side: Mapped[str] = mapped_column(String(8))  # payment | refund
    key: Mapped[str] = mapped_column(String(64))  # out_trade_no | out_refund_no
    type: Mapped[str] = mapped_column(String(32))
    out_trade_no: Mapped[str] = mapped_column(String(64), index=True)
    out_refund_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bill_amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    our_amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bill_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    our_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    heal_result: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(24))
    resolution: Mapped[str | None] = mapped_column(String(24), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True)
    maker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    checker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The refund an approved `refund` decided (payments' out_refund_no: a `Refund` of our order
    # or a `StrayRefund`), and its amount; cleared when that refund fails.
    refund_out_refund_no: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    refund_amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReconciliationItemEvent(Base):
    """The history of one item: created, healed, re-checked, assigned, commented, resolved."""

    __tablename__ = "reconciliation_item_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_items.id"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
