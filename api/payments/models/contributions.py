"""`Contribution` 缴费记录: one paid premium, person × insurance × year.

Unique per person × insurance × year while `status = paid` (a partial unique index, on SQLite
and PostgreSQL alike), so no premium is ever counted twice whatever the path that paid it
(WeChat, Alipay, agent cash, counter, government 代缴). A refund reverses it (`reversed`); the
row stays, and a new payment for the same premium may then be recorded.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnClause,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, utcnow


class ContributionStatus(StrEnum):
    PAID = "paid"
    REVERSED = "reversed"


SOURCES = ("wechat", "alipay", "agent", "counter", "government")
# premium: the year's premium (保费); backpay: a bureau-approved back-payment (补缴) for a past
# year (`api.backpay`), booked as a contribution of that year.
KINDS = ("premium", "backpay")
_PAID_SQL = "status = 'paid'"
# `Contribution.status == PAID_LITERAL` puts the word in the SQL, not a parameter: only a
# constant proves the partial index's predicate, so only then can a prepared statement's
# generic plan use the unique index (person_id, insurance, year) WHERE status = 'paid'. With a
# parameter, and no statistics, PostgreSQL scanned every contribution of the year
# (tests/perf/test_request_plans.py).
PAID_LITERAL: ColumnClause[str] = literal_column(f"'{ContributionStatus.PAID.value}'")


class Contribution(Base):
    __tablename__ = "contributions"
    __table_args__ = (
        Index(
            "uq_contributions_paid_person_insurance_year",
            "person_id",
            "insurance",
            "year",
            unique=True,
            sqlite_where=text(_PAID_SQL),
            postgresql_where=text(_PAID_SQL),
        ),
        Index("ix_contributions_household_year", "household_id", "year"),
        # The progress view (api.oversight): the year's paid premiums up to an as-of instant,
        # and the prior year's paid pension for the new-enrollee probe (migration 0011o).
        Index(
            "ix_contributions_paid_year_paid_at",
            "year",
            "paid_at",
            sqlite_where=text(_PAID_SQL),
            postgresql_where=text(_PAID_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    insurance: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # what the payer paid
    government_pays_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    subsidy_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    pension_tier: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_orders.id"), nullable=True, index=True
    )
    order_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("payment_order_items.id"), nullable=True
    )
    out_trade_no: Mapped[str | None] = mapped_column(String(32), nullable=True)
    channel_transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    benefit_start: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=ContributionStatus.PAID)
    kind: Mapped[str] = mapped_column(String(16), default="premium", server_default="premium")
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reversal_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # source government: the department whose 代缴 batch paid it (None: district finance).
    paying_department: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
