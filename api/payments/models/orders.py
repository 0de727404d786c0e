"""`PaymentOrder` 缴费订单, `OrderItem` 订单明细 and `OrderEvent` 状态变更记录.

An order is what one resident asked one channel to collect for one household and year; its
items are the person × insurance premiums it covers, priced from the policy when the order was
made (the client never sends an amount). The status moves only through `api.payments.states`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import Base, UTCDateTime, utcnow


class OrderStatus(StrEnum):
    CREATED = "created"  # committed, prepay not (yet) answered
    OPEN = "open"  # prepaid: the resident may pay
    PAID = "paid"
    CLOSED = "closed"  # closed at the channel (superseded, or closed by the channel)
    EXPIRED = "expired"  # closed at the channel after time_expire
    FAILED = "failed"  # prepay refused or unreachable
    DUPLICATE = "duplicate"  # paid, but some or all items were already paid (refund due)
    PAID_AFTER_CLOSE = "paid_after_close"  # paid at the channel after we had closed it
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# At most one order per household is in one of these (a partial unique index says so).
OPEN_STATES = (OrderStatus.CREATED, OrderStatus.OPEN)
_OPEN_SQL = "status IN ('created', 'open')"


class PaymentOrder(Base):
    __tablename__ = "payment_orders"
    __table_args__ = (
        # One open order per household: a second concurrent "create" fails here, not later.
        Index(
            "uq_payment_orders_one_open_per_household",
            "household_id",
            unique=True,
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
        Index("ix_payment_orders_status_created_at", "status", "created_at"),
        # Reconciliation reads one day's paid orders of a season (api.payments.books).
        Index("ix_payment_orders_paid_at", "paid_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # wechat | alipay
    scene: Mapped[str] = mapped_column(String(16))  # miniprogram | wap | qr
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("resident_accounts.id"), nullable=True, index=True
    )
    year: Mapped[int] = mapped_column(Integer)
    insurances: Mapped[str] = mapped_column(String(32))  # "medical,pension" as asked
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(24), default=OrderStatus.CREATED)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    priced_on: Mapped[str] = mapped_column(String(10))  # Beijing date the policy was applied on
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    channel_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pay_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    paid_amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    failure: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.id", cascade="all, delete-orphan"
    )

    @property
    def insurance_list(self) -> list[str]:
        return [i for i in self.insurances.split(",") if i]


class OrderItem(Base):
    """One premium in an order: person × insurance × year, priced by the policy rule named.

    `kind` premium | backpay (a bureau-approved back-payment, `backpay_id` its approval, priced
    at the approved amount); `year` may precede the order's year (a back-payment, or a
    newborn's birth year). `benefit_start`: the cover start as priced (the contribution's is
    fixed on the day it is paid)."""

    __tablename__ = "payment_order_items"
    __table_args__ = (UniqueConstraint("order_id", "person_id", "insurance", "year", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("payment_orders.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    insurance: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    government_pays_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    subsidy_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    pension_tier: Mapped[int | None] = mapped_column(Integer, nullable=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    rule: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(16), default="premium", server_default="premium")
    # The approval's id (api.backpay), no foreign key: the approval refers to its
    # contribution, and payments holds no constraint on another package's table.
    backpay_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    benefit_start: Mapped[date | None] = mapped_column(Date, nullable=True)

    order: Mapped[PaymentOrder] = relationship(back_populates="items")


class OrderEvent(Base):
    """Every state change of an order or a refund: from, to, who, why (append-only)."""

    __tablename__ = "payment_order_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("payment_orders.id"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), nullable=True)
    entity: Mapped[str] = mapped_column(String(8))  # order | refund
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
