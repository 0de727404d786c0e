"""Accounts: `ResidentAccount` 居民账号 (a WeChat openid or Alipay user id), `HouseholdBinding`
绑定 (which households an account may see), `BindAttempt` (for throttling guesses),
`StaffAccount` 工作人员 with a role scoped to a village or town, and `StaffLoginFailure`
(for throttling password guesses)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, utcnow

STAFF_ROLES = (
    "agent",
    "town",
    "finance",
    "department",
    "tax",
    "auditor",
    "hr_bureau",  # 人社局: pension back-payments (补缴)
    "medical_bureau",  # 医保局: medical back-payments (补缴)
)


class ResidentAccount(Base):
    __tablename__ = "resident_accounts"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # wechat | alipay
    external_id: Mapped[str] = mapped_column(String(64))  # openid | alipay user_id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HouseholdBinding(Base):
    __tablename__ = "household_bindings"
    __table_args__ = (UniqueConstraint("account_id", "household_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("resident_accounts.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BindAttempt(Base):
    """One failed bind attempt; recent failures per account or address slow further tries."""

    __tablename__ = "bind_attempts"
    __table_args__ = (
        Index("ix_bind_attempts_account_at", "account_id", "at"),
        Index("ix_bind_attempts_addr_at", "remote_addr", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("resident_accounts.id"))
    remote_addr: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StaffAccount(Base):
    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    town_id: Mapped[int | None] = mapped_column(ForeignKey("towns.id"), nullable=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"), nullable=True)
    department: Mapped[str | None] = mapped_column(String(32), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StaffLoginFailure(Base):
    """One failed staff login; recent failures per username or address refuse further tries.

    The username is kept as typed (stripped, lower-cased), known or not, so guessing at
    accounts that do not exist is throttled the same way; a successful login clears its own
    username's failures from its own address only (`api.auth.service.login_staff`).
    """

    __tablename__ = "staff_login_failures"
    __table_args__ = (
        Index("ix_staff_login_failures_username_at", "username", "at"),
        Index("ix_staff_login_failures_remote_addr_at", "remote_addr", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    remote_addr: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
