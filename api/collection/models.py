"""Receipts of agent collection: `ReceiptCounter` 收据号计数 (per village and insurance year),
`Receipt` 专用收据 and `ReceiptLine` 收据明细 (one premium: person × insurance, with the
contribution it booked).

No name or ID number is stored here (DESIGN.md "Identities at rest"): a line names its person
by id, and every view reads the person through `api.households.service`, masked.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import Base, UTCDateTime, utcnow


class ReceiptStatus(StrEnum):
    ISSUED = "issued"
    VOIDED = "voided"


class ReceiptCounter(Base):
    """The last receipt number issued in a village for an insurance year (gapless sequence):
    incremented in the transaction that writes the receipt, so a rolled-back collection
    leaves no gap and a row lock makes concurrent agents queue."""

    __tablename__ = "collection_receipt_counters"

    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)


class Receipt(Base):
    """One receipt: a household's cash for some of its premiums, taken by one agent."""

    __tablename__ = "collection_receipts"
    __table_args__ = (
        UniqueConstraint("village_id", "year", "seq"),
        UniqueConstraint("agent_id", "idempotency_key"),
        Index("ix_collection_receipts_village_year_id", "village_id", "year", "id"),
        Index("ix_collection_receipts_household_year", "household_id", "year"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    receipt_no: Mapped[str] = mapped_column(String(32), unique=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    year: Mapped[int] = mapped_column(Integer)  # the insurance year collected for
    seq: Mapped[int] = mapped_column(Integer)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    issued_on: Mapped[date] = mapped_column(Date)  # Beijing day
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default=ReceiptStatus.ISSUED)
    void_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    voided_by: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    lines: Mapped[list[ReceiptLine]] = relationship(
        back_populates="receipt", order_by="ReceiptLine.id", cascade="all, delete-orphan"
    )


class ReceiptLine(Base):
    """One premium on a receipt, and the contribution booked for it."""

    __tablename__ = "collection_receipt_lines"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    receipt_id: Mapped[int] = mapped_column(ForeignKey("collection_receipts.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    insurance: Mapped[str] = mapped_column(String(16))
    pension_tier: Mapped[int | None] = mapped_column(Integer, nullable=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    contribution_id: Mapped[int] = mapped_column(ForeignKey("contributions.id"), unique=True)

    receipt: Mapped[Receipt] = relationship(back_populates="lines")
