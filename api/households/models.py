"""Models of the district and its insured residents.

`Town` 镇(街), `Village` 村居, `Household` 户, `Person` 参保人, `PersonCategory` 特殊群体身份,
`Enrollment` 参保登记 (person × insurance × year, with the chosen pension tier).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates
from sqlalchemy.sql.elements import ColumnElement

from api.db import Base, UTCDateTime, utcnow
from api.pii.types import EncryptedText, blind_index, blind_index_type, blind_indexes

INSURANCES = ("medical", "pension")
# The blind index's purpose: every exact-match lookup of a resident by ID number uses it.
ID_NUMBER_INDEX = "persons.id_number"


class Town(Base):
    """镇(街): with the plan's targets (附件2 任务分配表)."""

    __tablename__ = "towns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    target_pension_persons: Mapped[int] = mapped_column(Integer, default=0)
    target_pension_new_persons: Mapped[int] = mapped_column(Integer, default=0)
    target_medical_persons: Mapped[int] = mapped_column(Integer, default=0)
    target_medical_amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)

    villages: Mapped[list[Village]] = relationship(back_populates="town")


class Village(Base):
    """村居: the unit of the payment roster (清册) and of an agent's scope."""

    __tablename__ = "villages"
    __table_args__ = (UniqueConstraint("town_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))

    town: Mapped[Town] = relationship(back_populates="villages")


class Household(Base):
    """户: the unit of medical insurance (以家庭为单位全员参加)."""

    __tablename__ = "households"
    __table_args__ = (UniqueConstraint("village_id", "household_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), index=True)
    household_no: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    village: Mapped[Village] = relationship()
    members: Mapped[list[Person]] = relationship(back_populates="household", order_by="Person.id")


class Person(Base):
    """参保人: one resident, keyed by the 18-character resident ID number.

    The ID number and the name are stored encrypted (`api.pii`); `id_number_index`, the blind
    index of the ID number, is the unique key every exact lookup uses (`id_number_lookup`).
    Birth date and sex stay in clear: the rules read them.
    """

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    id_number: Mapped[str] = mapped_column(EncryptedText("persons.id_number", 18))
    id_number_index: Mapped[str] = mapped_column(
        blind_index_type(), unique=True, info={"blind_index": ("id_number", ID_NUMBER_INDEX)}
    )
    name: Mapped[str] = mapped_column(EncryptedText("persons.name", 64))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    student: Mapped[bool] = mapped_column(Boolean, default=False)
    employee_pension: Mapped[bool] = mapped_column(Boolean, default=False)
    employee_medical: Mapped[bool] = mapped_column(Boolean, default=False)
    residence_permit: Mapped[bool] = mapped_column(Boolean, default=False)
    deceased_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    household: Mapped[Household] = relationship(back_populates="members")
    categories: Mapped[list[PersonCategory]] = relationship(
        back_populates="person", cascade="all, delete-orphan", order_by="PersonCategory.category"
    )
    enrollments: Mapped[list[Enrollment]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )

    @classmethod
    def id_number_is(cls, id_number: str) -> ColumnElement[bool]:
        """The WHERE clause of an exact ID-number match: one equality (an IN of two while the
        blind index is rebuilt under a new key) on the unique index, no decryption."""
        values = blind_indexes(id_number, ID_NUMBER_INDEX)
        if len(values) == 1:
            return cls.id_number_index == values[0]
        return cls.id_number_index.in_(values)

    @validates("id_number")
    def _index_id_number(self, _key: str, value: str) -> str:
        self.id_number_index = blind_index(value, ID_NUMBER_INDEX)
        return value

    @property
    def category_keys(self) -> frozenset[str]:
        return frozenset(c.category for c in self.categories)


class PersonCategory(Base):
    """特殊群体身份: a category key (DOMAIN.md) with the department or import that asserted it."""

    __tablename__ = "person_categories"
    __table_args__ = (UniqueConstraint("person_id", "category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32), default="roster")
    # The department list (api/departments upload id) that asserted it; None for a roster.
    upload_id: Mapped[int | None] = mapped_column(Integer, nullable=True)

    person: Mapped[Person] = relationship(back_populates="categories")


class Enrollment(Base):
    """参保登记: person × insurance × year, holding the pension tier the payer chose."""

    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("person_id", "insurance", "year"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    insurance: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    pension_tier: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    person: Mapped[Person] = relationship(back_populates="enrollments")
