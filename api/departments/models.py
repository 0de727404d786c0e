"""Models of department lists and 代缴 batches.

`DepartmentListVersion` 名单版本 (one row per department, locked while a list is applied, so two
applies of one department run one after the other), `DepartmentUpload` 名单上传 (the preview,
stored server-side, and its life: preview → applied, or awaiting_approval → applied after
finance's approval, or discarded), `UploadLine` 名单行 (each line's outcome; ID number and name
encrypted), `ListEntry` 现行名单 (who each department lists now), `CategoryChange` 身份变更历史
(append-only), `ChangeEffect` 变更处理 (what a change did, unique per effect: exactly once),
`DepartmentBatch` 代缴批次 and `BatchLine` 批次明细 (unique per person × insurance × year × kind).
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
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import Base, UTCDateTime, utcnow
from api.pii.types import EncryptedText


class UploadStatus(StrEnum):
    PREVIEW = "preview"
    AWAITING_APPROVAL = "awaiting_approval"  # applied after the deadline: finance must approve
    APPLIED = "applied"
    DISCARDED = "discarded"


class LineKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    UNCHANGED = "unchanged"
    NOT_IN_ROSTER = "not_in_roster"
    NAME_MISMATCH = "name_mismatch"
    BAD_ID = "bad_id"
    BAD_ROW = "bad_row"  # unknown or foreign category, bad date, missing cell, repeated person
    AGE_MISMATCH = "age_mismatch"  # 卫健: listed, but the ID number's age is outside the band


BLOCKING = frozenset({LineKind.NAME_MISMATCH, LineKind.BAD_ID, LineKind.BAD_ROW})


class BatchStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"  # and booked, in the same transaction


class BatchLineKind(StrEnum):
    BOOK = "book"  # the department pays: a government contribution is booked
    REIMBURSE = "reimburse"  # 个人已缴，代缴资金退付个人
    REVERSE = "reverse"  # a government contribution booked for a person no longer listed


class DepartmentListVersion(Base):
    __tablename__ = "department_list_versions"

    department: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class DepartmentUpload(Base):
    __tablename__ = "department_uploads"
    __table_args__ = (Index("ix_department_uploads_department_status", "department", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department: Mapped[str] = mapped_column(String(32))
    year: Mapped[int] = mapped_column(Integer)
    keys: Mapped[list[str]] = mapped_column(JSON)  # the categories/events this list covers
    file_name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24), default=UploadStatus.PREVIEW)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    applied_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # list version it made

    lines: Mapped[list[UploadLine]] = relationship(
        back_populates="upload", order_by="UploadLine.id", cascade="all, delete-orphan"
    )


class UploadLine(Base):
    __tablename__ = "department_upload_lines"
    __table_args__ = (Index("ix_department_upload_lines_upload_kind", "upload_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("department_uploads.id", ondelete="CASCADE"))
    line: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: removed (not in file)
    kind: Mapped[str] = mapped_column(String(24))
    key: Mapped[str] = mapped_column(String(32), default="")
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    id_number: Mapped[str] = mapped_column(EncryptedText("department_upload_lines.id_number"))
    name: Mapped[str] = mapped_column(EncryptedText("department_upload_lines.name"))
    effective_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    document_no: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(String(200), default="")

    upload: Mapped[DepartmentUpload] = relationship(back_populates="lines")


class ListEntry(Base):
    """Who a department lists now under a key (current state; history in `CategoryChange`)."""

    __tablename__ = "department_list_entries"
    __table_args__ = (UniqueConstraint("person_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department: Mapped[str] = mapped_column(String(32), index=True)
    key: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    upload_id: Mapped[int] = mapped_column(ForeignKey("department_uploads.id"))
    effective_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    document_no: Mapped[str] = mapped_column(String(64), default="")


class CategoryChange(Base):
    """身份变更历史: one row per added / removed key per person; never updated or deleted."""

    __tablename__ = "department_category_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    department: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(32))
    change: Mapped[str] = mapped_column(String(16))  # added | removed | recorded (events)
    upload_id: Mapped[int] = mapped_column(ForeignKey("department_uploads.id"), index=True)
    effective_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    document_no: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChangeEffect(Base):
    """What an applied change did; `(kind, person_id, ref)` unique, so each happens once."""

    __tablename__ = "department_change_effects"
    __table_args__ = (UniqueConstraint("kind", "person_id", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # order_closed | death_recorded | death_refund…
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    ref: Mapped[str] = mapped_column(String(64))  # the order, contribution or year concerned
    upload_id: Mapped[int] = mapped_column(ForeignKey("department_uploads.id"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DepartmentBatch(Base):
    __tablename__ = "department_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department: Mapped[str] = mapped_column(String(32), index=True)
    year: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.SUBMITTED)
    submitted_by: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    totals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    lines: Mapped[list[BatchLine]] = relationship(
        back_populates="batch", order_by="BatchLine.id", cascade="all, delete-orphan"
    )


class BatchLine(Base):
    """One line of a batch; a person × insurance × year × kind (× reversed contribution) is in
    one batch only, whatever races (the unique constraint)."""

    __tablename__ = "department_batch_lines"
    __table_args__ = (UniqueConstraint("year", "person_id", "insurance", "kind", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("department_batches.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    insurance: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[int] = mapped_column(BigInteger, default=0)  # reverse: the contribution id
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    contribution_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outcome: Mapped[str] = mapped_column(String(24), default="pending")

    batch: Mapped[DepartmentBatch] = relationship(back_populates="lines")
