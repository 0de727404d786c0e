"""`BackpayApproval` 补缴核定: one bureau decision for one person, insurance and past year.

The amount is the bureau's (the plan gives no formula): entered with the approval, never
computed or edited here. A decision covering several years is several rows sharing the
document number. Persons are referenced by id only (no ID number or name is stored here).

The state moves approved → paid (once: a conditional update, and `contribution_id` unique) or
approved → withdrawn, and paid → reversed when a refund reverses its contribution; at most one
live (approved or paid) approval per person × insurance × year (a partial unique index).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, utcnow


class BackpayStatus(StrEnum):
    APPROVED = "approved"  # payable until expires_on (inclusive, Beijing date)
    PAID = "paid"
    WITHDRAWN = "withdrawn"
    REVERSED = "reversed"  # paid, then refunded (its contribution reversed): may be approved anew


_LIVE_SQL = "status IN ('approved', 'paid')"


class BackpayApproval(Base):
    __tablename__ = "backpay_approvals"
    __table_args__ = (
        Index(
            "uq_backpay_approvals_live_person_insurance_year",
            "person_id",
            "insurance",
            "year",
            unique=True,
            sqlite_where=text(_LIVE_SQL),
            postgresql_where=text(_LIVE_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    insurance: Mapped[str] = mapped_column(String(16))  # pension (hr_bureau) | medical
    year: Mapped[int] = mapped_column(Integer)  # the past year paid for
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # as the decision states it
    # Pension: the 缴费档次 (yuan) the decision names — the tax record carries a tier for every
    # pension contribution; None for medical.
    pension_tier: Mapped[int | None] = mapped_column(Integer, nullable=True)
    document_no: Mapped[str] = mapped_column(String(64))  # 核定文书编号
    expires_on: Mapped[date] = mapped_column(Date)
    bureau: Mapped[str] = mapped_column(String(16))  # the approving role
    status: Mapped[str] = mapped_column(String(16), default=BackpayStatus.APPROVED)
    approved_by: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    withdrawn_by: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    withdrawal_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("payment_orders.id"), nullable=True)
    contribution_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("contributions.id"),
        nullable=True,
        unique=True,
    )
