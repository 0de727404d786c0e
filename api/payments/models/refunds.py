"""`Refund` 退费 and `RefundItem` 退费明细.

Three kinds: automatic (a duplicate payment or a payment after close: the money the household
should not have paid goes back), staff-initiated (deceased, joined employee insurance,
paid twice elsewhere…), partial by item, and reconciliation's (a difference finance approved to
give back: the whole order, or — with no items — what the channel took above the order's
amount). `StrayRefund` 不明来款退回 is the same machinery for a trade that is not ours (no
order, no items, no contributions). A refund is written in state `requested` in the
transaction that decides it; the refund processor calls the channel after commit. State moves
only through `api.payments.states`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import Base, UTCDateTime, utcnow


class RefundState(StrEnum):
    REQUESTED = "requested"  # decided, the channel not yet (successfully) asked
    PROCESSING = "processing"  # the channel accepted; its result is pending
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the channel refused for good: finance must act


class RefundReason(StrEnum):
    DECEASED = "deceased"
    EMPLOYEE_INSURED = "employee_insured"
    DUPLICATE = "duplicate"  # staff: paid twice (e.g. cash and online)
    OTHER = "other"
    DUPLICATE_PAYMENT = "duplicate_payment"  # automatic: items already paid
    PAID_AFTER_CLOSE = "paid_after_close"  # automatic: order closed before the payment
    RECONCILIATION = "reconciliation"  # a reconciliation difference: the whole order back
    CHANNEL_EXCESS = "channel_excess"  # the channel took more than the order: the excess back
    UNKNOWN_TRADE = "unknown_trade"  # a stray refund: a trade that is not ours


STAFF_REASONS = (
    RefundReason.DECEASED,
    RefundReason.EMPLOYEE_INSURED,
    RefundReason.DUPLICATE,
    RefundReason.OTHER,
)


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    out_refund_no: Mapped[str] = mapped_column(String(32), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("payment_orders.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=RefundState.REQUESTED)
    requested_by: Mapped[str] = mapped_column(String(64))  # "system" | "staff:3"
    channel_refund_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # requested: when the processor may send it (next); processing: when the healer may ask the
    # channel about it next (`healing.ask_again_after`).
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The trade's total at the channel when it differs from the order's (an excess refund: the
    # channel took more than we asked); the refund call's total_fee / amount.total.
    channel_total_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    items: Mapped[list[RefundItem]] = relationship(
        back_populates="refund", order_by="RefundItem.id", cascade="all, delete-orphan"
    )


class RefundItem(Base):
    """One refunded premium (an order item), with the contribution it reverses if any."""

    __tablename__ = "refund_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"), index=True)
    order_item_id: Mapped[int] = mapped_column(ForeignKey("payment_order_items.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    insurance: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    contribution_id: Mapped[int | None] = mapped_column(
        ForeignKey("contributions.id"), nullable=True
    )

    refund: Mapped[Refund] = relationship(back_populates="items")


class StrayRefund(Base):
    """不明来款退回: money the channel took under an out_trade_no that is not ours, sent back.

    No order, so no items and no contributions; the same states and the same processor path as
    `Refund` (requested → processing → succeeded | failed), moved only through
    `api.payments.states.transition_stray_refund`.
    """

    __tablename__ = "stray_refunds"
    __table_args__ = (Index("ix_stray_refunds_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    out_refund_no: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    out_trade_no: Mapped[str] = mapped_column(String(64), index=True)
    transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    total_fen: Mapped[int] = mapped_column(BigInteger)  # the trade's amount at the channel
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=RefundState.REQUESTED)
    requested_by: Mapped[str] = mapped_column(String(64))
    channel_refund_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
