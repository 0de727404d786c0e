"""Service functions for the department lists (api/departments): find registered persons by
ID number, assert or withdraw a special-group category with its source department and upload,
and record a death (公安). Flushes, never commits (STYLE.md 4).

A category a department asserts takes over the `person_categories` row of that key (its
`source` becomes the department, `upload_id` the list it came from); withdrawing removes the
row only while that department is still its source. The history of who asserted what, and
when, is the departments package's append-only `department_category_changes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from api.households.models import ID_NUMBER_INDEX, Person, PersonCategory
from api.pii.types import blind_indexes


@dataclass(frozen=True)
class RegisteredPerson:
    """A registered person as a department list needs them (full values: never for output)."""

    id: int
    id_number: str
    name: str
    household_id: int
    birth_date: date
    deceased_on: date | None


def persons_by_id_number(
    session: Session, id_numbers: Iterable[str], *, chunk: int = 500
) -> dict[str, RegisteredPerson]:
    """The registered persons among `id_numbers` (normalised 18-character numbers), keyed by
    ID number; looked up by blind index, never by decrypting the table."""
    wanted = sorted(set(id_numbers))
    by_index: dict[str, str] = {}
    for number in wanted:
        for value in blind_indexes(number, ID_NUMBER_INDEX):
            by_index[value] = number
    found: dict[str, RegisteredPerson] = {}
    indexes = list(by_index)
    for start in range(0, len(indexes), chunk):
        rows = session.execute(
            select(
                Person.id_number_index,
                Person.id,
                Person.id_number,
                Person.name,
                Person.household_id,
                Person.birth_date,
                Person.deceased_on,
            ).where(Person.id_number_index.in_(indexes[start : start + chunk]))
        ).all()
        for row in rows:
            found[by_index[row[0]]] = RegisteredPerson(*row[1:])
    return found


def persons_by_id(session: Session, person_ids: Sequence[int]) -> dict[int, RegisteredPerson]:
    rows = session.execute(
        select(
            Person.id,
            Person.id_number,
            Person.name,
            Person.household_id,
            Person.birth_date,
            Person.deceased_on,
        ).where(Person.id.in_(list(person_ids)))
    ).all()
    return {row[0]: RegisteredPerson(*row) for row in rows}


def category_sources(session: Session, person_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """Per person, each category they hold and the source that asserted it."""
    result: dict[int, dict[str, str]] = {pid: {} for pid in person_ids}
    rows = session.execute(
        select(PersonCategory.person_id, PersonCategory.category, PersonCategory.source).where(
            PersonCategory.person_id.in_(list(person_ids))
        )
    ).all()
    for pid, category, source in rows:
        result.setdefault(pid, {})[category] = source
    return result


def persons_with_sources(session: Session, sources: Sequence[str]) -> list[int]:
    """Persons holding a category asserted by one of `sources` (ordered by id)."""
    return list(
        session.scalars(
            select(PersonCategory.person_id)
            .where(PersonCategory.source.in_(list(sources)))
            .distinct()
            .order_by(PersonCategory.person_id)
        )
    )


def assert_category(
    session: Session, *, person_id: int, category: str, source: str, upload_id: int
) -> None:
    """The person holds `category`, asserted by `source` through upload `upload_id`."""
    changed = session.execute(
        update(PersonCategory)
        .where(PersonCategory.person_id == person_id, PersonCategory.category == category)
        .values(source=source, upload_id=upload_id)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        session.add(
            PersonCategory(
                person_id=person_id, category=category, source=source, upload_id=upload_id
            )
        )
        session.flush()


def withdraw_category(session: Session, *, person_id: int, category: str, source: str) -> bool:
    """Remove `category` from the person while `source` is the one asserting it."""
    gone = session.execute(
        delete(PersonCategory)
        .where(
            PersonCategory.person_id == person_id,
            PersonCategory.category == category,
            PersonCategory.source == source,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(gone.rowcount)  # type: ignore[attr-defined]


def record_death(session: Session, *, person_id: int, died_on: date) -> bool:
    """Record the date of death (公安); False when that date was already recorded."""
    changed = session.execute(
        update(Person)
        .where(
            Person.id == person_id,
            (Person.deceased_on.is_(None)) | (Person.deceased_on != died_on),
        )
        .values(deceased_on=died_on)
        .execution_options(synchronize_session=False)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def count_born_between(session: Session, *, after: date | None, on_or_before: date) -> int:
    """Living registered persons born in (`after`, `on_or_before`] (卫健's age bands)."""
    query = (
        select(func.count())
        .select_from(Person)
        .where(Person.birth_date <= on_or_before, Person.deceased_on.is_(None))
    )
    if after is not None:
        query = query.where(Person.birth_date > after)
    return int(session.scalar(query) or 0)
