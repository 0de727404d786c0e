"""Roster import 参保登记导入: the registration roster from HR / medical insurance, as rows.

DOMAIN.md "The process" step 1: registrations and their changes (new persons, deaths, joining
employee insurance, special-group marks) arrive as roster files, and later imports carry the
changes. So an import is an upsert keyed by the resident ID number:

- a new ID number creates the person (and the household, keyed by village + household number);
- a known ID number in the same household UPDATES the person: name, the four flags and the
  death date take the roster's values, and the categories this import's `source` asserted are
  replaced by the roster's (categories asserted by another source, e.g. a department's list,
  are left alone);
- a known ID number in ANOTHER household is refused (迁户 is a registration change, not
  something a roster may do silently: payments and bindings hang off the household);
- persons absent from the roster are left as they are (a roster may cover one village).

Towns and villages must already exist (the plan's table, `district.ensure_district`): an
unknown town or village is a bad row, never created on the fly, because a typo in a village
name would otherwise open a new collecting unit (虚拟户) with no agent and no target.

ID numbers and names are stored encrypted (api/pii): the preload keys persons by the ID number's
blind index (one HMAC per row, never decrypting the table) and decrypts a stored name only for a
person the roster names; the bulk writer encrypts through the column types' bind processors.

Validation runs over every row first, in Python, in one pass, against dicts preloaded from the
database; nothing is written unless the whole file is valid (or `skip_bad` is set). Writing
then uses SQLAlchemy Core executemany in large batches, and UPDATEs only the rows that changed:
the full district (~440k persons) must import in well under a minute (bench/roster_import.py).
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from typing import IO, Any, cast

from sqlalchemy import Connection, Table, Text, select, type_coerce
from sqlalchemy.orm import Session

from api import clock
from api.audit.service import record as audit
from api.db import utcnow
from api.documents.cells import csv_row
from api.households.models import (
    ID_NUMBER_INDEX,
    Household,
    Person,
    PersonCategory,
    Town,
    Village,
)
from api.households.roster_files import RosterRow
from api.households.roster_writer import BulkWriter
from api.pii.keyring import current as pii_keyring
from api.policy.idnumber import InvalidIdNumber, normalize_id_number
from api.policy.model import load_policy

# A plausible name (DOMAIN.md "Names"): Han characters (all CJK blocks) with the middle dot
# `·` between parts (阿依古丽·买买提); residence-permit holders may also be named in Latin
# letters with spaces, hyphens and apostrophes inside. Nothing else: a name with `=`, `|`,
# `+`, digits or control characters is not a name but an attempt on whoever opens the exports.
_HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HAN_NAME = re.compile(f"[{_HAN}]+(?:·[{_HAN}]+)*")
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
_PERMIT_NAME = re.compile(f"[{_HAN}{_LATIN}]+(?:(?:[ ·'-]|\\. ?)[{_HAN}{_LATIN}]+)*\\.?")


def name_problem(name: str, *, residence_permit: bool) -> str | None:
    """Why `name` is not a plausible person's name, or None (the message is shown to staff)."""
    if (_PERMIT_NAME if residence_permit else _HAN_NAME).fullmatch(name):
        return None
    if residence_permit:
        return "姓名只能包含汉字、拉丁字母，以及中间的间隔号“·”、空格、连字符或撇号"
    return "姓名只能包含汉字和中间的间隔号“·”（持居住证者可用拉丁字母）"


_BOOLEANS = {"1": True, "0": False, "": False, "是": True, "否": False}
_FLAG_LABELS = {
    "student": "在校学生",
    "employee_pension": "职工养老",
    "employee_medical": "职工医疗",
    "residence_permit": "居住证",
}
# Chinese labels accepted in the categories column beside the keys of DOMAIN.md's table (the
# policy file's own labels are accepted too).
CATEGORY_LABELS = {
    "重度残疾人": "disabled_severe",
    "建档立卡贫困人口": "poverty_registered",
    "建档立卡已脱贫": "poverty_lifted",
    "低保对象": "dibao",
    "低保": "dibao",
    "特困人员": "tekun",
    "特困": "tekun",
    "五保": "tekun",
    "因病困难": "hardship_approved",
    "优抚对象": "youfu",
    "孤儿": "orphan",
}
NAME_PURPOSE = "persons.name"  # the name column's EncryptedText purpose
_DATE_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class RowError:
    """One reason a row is bad: its line in the file, a stable code and a Chinese message."""

    line: int
    code: str
    message: str
    column: str | None = None

    def __str__(self) -> str:
        return f"第 {self.line} 行：{self.message} [{self.code}]"


class RowErrors:
    """Every bad row's errors, in bounded memory: all are counted per reason (`counts`), the
    first `keep` are kept for the report, and each is written as it is found to `sink` (a
    text stream; `roster import --errors-file`) when one is given — so 100,000 bad rows cost
    the same memory as a few thousand.
    """

    KEEP = 2000
    SINK_COLUMNS = ("line", "code", "column", "message")

    def __init__(self, *, keep: int = KEEP, sink: IO[str] | None = None) -> None:
        self.keep = keep
        self.kept: list[RowError] = []
        self.counts: Counter[str] = Counter()
        self.total = 0
        self._writer = csv.writer(sink) if sink is not None else None
        if self._writer is not None:
            self._writer.writerow(self.SINK_COLUMNS)

    def append(self, error: RowError) -> None:
        self.total += 1
        self.counts[error.code] += 1
        if len(self.kept) < self.keep:
            self.kept.append(error)
        if self._writer is not None:
            self._writer.writerow(
                csv_row((error.line, error.code, error.column or "", error.message))
            )

    @property
    def truncated(self) -> int:
        """How many errors are counted but not kept."""
        return self.total - len(self.kept)

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[RowError]:
        return iter(self.kept)

    def __getitem__(self, index: slice) -> list[RowError]:
        return self.kept[index]


@dataclass
class ImportReport:
    """What an import found and did. Counts are of persons (rows), except `households_created`.

    `written` is False when nothing was written: the file was refused (bad rows and no
    `skip_bad`) or the run was a dry run (whose counts say what would have been written).
    """

    source: str
    file_name: str = ""
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    households_created: int = 0
    bad_rows: int = 0
    errors: RowErrors = field(default_factory=RowErrors)
    written: bool = False
    dry_run: bool = False
    validate_seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def refused(self) -> bool:
        return self.bad_rows > 0 and not self.written and not self.dry_run

    def counts(self) -> dict[str, Any]:
        """The counts without any row content (safe for the audit log)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "errors"}
        data["error_codes"] = sorted(self.errors.counts)
        data["error_counts"] = dict(sorted(self.errors.counts.items()))
        return data

    def as_dict(self) -> dict[str, Any]:
        """The counts and the kept errors (the first `RowErrors.KEEP`; `errors_not_listed`
        says how many more there were)."""
        data = self.counts()
        data["errors"] = [asdict(e) for e in self.errors]
        data["errors_not_listed"] = self.errors.truncated
        return data


@dataclass
class _Plan:
    """The validated rows, turned into what must be written."""

    new_households: dict[tuple[int, str], None] = field(default_factory=dict)  # ordered set
    new_persons: list[tuple[Any, ...]] = field(default_factory=list)
    updates: list[tuple[Any, ...]] = field(default_factory=list)  # UPDATE_COLUMNS + id
    category_deletes: list[int] = field(default_factory=list)
    category_inserts: list[tuple[int, str]] = field(default_factory=list)


_ID_REASONS = {
    "format": "id_number_format",
    "birth_date": "id_number_birth_date",
    "check_character": "id_number_check",
}


def import_roster(
    session: Session,
    rows: Iterable[RosterRow],
    *,
    skip_bad: bool = False,
    source: str = "roster",
    year: int = 2020,
    dry_run: bool = False,
    file_name: str = "",
    today: date | None = None,
    actor: str = "system",
    errors_to: IO[str] | None = None,
) -> ImportReport:
    """Validate every row, then (if allowed) write them; flush, never commit.

    Always records one audit event (counts and file name, no ID numbers), also for a refused
    file, so the caller should commit even when `report.refused` (nothing else was written).
    Bad rows are reported in bounded memory (`RowErrors`); `errors_to` receives every one of
    them as CSV (line, code, column, message).
    """
    today = today or clock.today()
    report = ImportReport(
        source=source, file_name=file_name, dry_run=dry_run, errors=RowErrors(sink=errors_to)
    )
    policy = load_policy(year)
    labels = {**CATEGORY_LABELS, **{label: key for key, label in policy.categories}}
    started = time.perf_counter()
    plan = _validate(
        session,
        rows,
        report,
        category_keys=policy.category_keys,
        labels=labels,
        source=source,
        today=today,
    )
    validated = time.perf_counter()
    report.validate_seconds = round(validated - started, 3)
    if report.bad_rows and not skip_bad:
        report.created = report.updated = report.unchanged = 0
    elif not dry_run:
        report.households_created = _write(session, plan, source=source)
        report.written = True
        report.skipped = report.bad_rows
        report.write_seconds = round(time.perf_counter() - validated, 3)
    else:
        report.households_created = len(plan.new_households)
        report.skipped = report.bad_rows
    audit(
        session,
        actor=actor,
        action="roster.import",
        subject=f"file:{file_name}"[:64],
        outcome="refused" if report.refused else "ok",
        detail=report.counts(),
    )
    session.flush()
    return report


def _validate(
    session: Session,
    rows: Iterable[RosterRow],
    report: ImportReport,
    *,
    category_keys: frozenset[str],
    labels: dict[str, str],
    source: str,
    today: date,
) -> _Plan:
    """One pass over the rows; errors go to `report`, valid rows become the write plan."""
    conn = session.connection()
    towns: dict[str, int] = {}
    town_names: dict[int, str] = {}
    for tid, code, name in conn.execute(select(Town.id, Town.code, Town.name)):
        towns[code] = towns[name] = tid
        town_names[tid] = name
    villages: dict[tuple[int, str], int] = {}
    for vid, tid, code, name in conn.execute(
        select(Village.id, Village.town_id, Village.code, Village.name)
    ):
        villages[(tid, code)] = villages[(tid, name)] = vid
    households: dict[tuple[int, str], int] = {
        (vid, no): hid
        for hid, vid, no in conn.execute(
            select(Household.id, Household.village_id, Household.household_no)
        )
    }
    # Keyed by the blind index (never decrypting the ID numbers); the name is read as stored
    # and decrypted only for a person the roster names (`_name_of`).
    persons: dict[str, tuple[Any, ...]] = {
        r[1]: tuple(r)
        for r in conn.execute(
            select(
                Person.id,
                Person.id_number_index,
                Person.household_id,
                type_coerce(Person.name, Text),
                Person.student,
                Person.employee_pension,
                Person.employee_medical,
                Person.residence_permit,
                Person.deceased_on,
            )
        )
    }
    person_categories: dict[int, dict[str, tuple[int, str]]] = {}
    for cid, pid, category, cat_source in conn.execute(
        select(
            PersonCategory.id,
            PersonCategory.person_id,
            PersonCategory.category,
            PersonCategory.source,
        )
    ):
        person_categories.setdefault(pid, {})[category] = (cid, cat_source)

    keyring = pii_keyring()
    indexes, index_of, decrypt = keyring.indexes, keyring.index, keyring.decrypt
    plan = _Plan()
    seen: dict[str, int] = {}
    errors = report.errors
    booleans = _BOOLEANS
    no_categories: frozenset[str] = frozenset()
    bad_lines = 0
    total = 0
    created = updated = unchanged = 0
    for row in rows:
        total += 1
        line = row.line
        mark = len(errors)
        if row.problem:
            errors.append(RowError(line, row.problem, "列数与表头不一致（检查引号和分隔符）"))
            bad_lines += 1
            continue

        village_id: int | None = None
        town_id = towns.get(row.town)
        if town_id is None:
            if row.town:
                errors.append(RowError(line, "unknown_town", f"未知的镇街“{row.town}”", "town"))
            else:
                errors.append(RowError(line, "missing_town", "镇街为空", "town"))
        elif not row.village:
            errors.append(RowError(line, "missing_village", "村居为空", "village"))
        else:
            village_id = villages.get((town_id, row.village))
            if village_id is None:
                errors.append(
                    RowError(
                        line,
                        "unknown_village",
                        f"{town_names[town_id]}没有村居“{row.village}”",
                        "village",
                    )
                )
        household_no = row.household_no
        if not household_no:
            errors.append(RowError(line, "missing_household_no", "户号为空", "household_no"))
        elif len(household_no) > 32:
            errors.append(RowError(line, "bad_household_no", "户号超过 32 个字符", "household_no"))

        id_number: str | None = None
        existing: tuple[Any, ...] | None = None
        birth: date | None = None
        sex = ""
        raw_id = row.id_number
        if not raw_id:
            errors.append(RowError(line, "missing_id_number", "身份证号为空", "id_number"))
        else:
            try:
                # A number exactly as stored was validated when it was stored: a re-import of
                # 440k known persons skips 440k check-character computations.
                existing = _find(persons, indexes, raw_id)
                if existing is not None:
                    id_number = raw_id
                else:
                    id_number = normalize_id_number(raw_id)
                    if id_number != raw_id:
                        existing = _find(persons, indexes, id_number)
            except InvalidIdNumber as exc:
                code = _ID_REASONS.get(exc.reason, "id_number_format")
                errors.append(RowError(line, code, exc.message, "id_number"))
            else:
                # Normalized, so the slices are a valid date and digit (idnumber.birth_date_of
                # and sex_of would validate the number twice more: 3x the cost at 440k rows).
                birth = date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
                sex = "M" if int(id_number[16]) % 2 else "F"
                if birth > today:
                    errors.append(
                        RowError(
                            line,
                            "id_number_birth_date",
                            "身份证号中的出生日期晚于今天",
                            "id_number",
                        )
                    )
                first = seen.get(id_number)
                if first is not None:
                    errors.append(
                        RowError(
                            line, "duplicate_id_number", f"身份证号与第 {first} 行重复", "id_number"
                        )
                    )
                else:
                    seen[id_number] = line

        categories = no_categories
        if row.categories:
            found = set()
            for part in row.categories.replace("；", ";").split(";"):
                category = part.strip()
                if not category:
                    continue
                category = labels.get(category, category)
                if category in category_keys:
                    found.add(category)
                else:
                    errors.append(
                        RowError(
                            line,
                            "unknown_category",
                            f"未知的特殊群体类别“{part.strip()}”",
                            "categories",
                        )
                    )
            categories = frozenset(found)

        flags = []
        for column in ("student", "employee_pension", "employee_medical", "residence_permit"):
            raw = getattr(row, column)
            value = booleans.get(raw)
            if value is None:
                errors.append(
                    RowError(
                        line,
                        "bad_boolean",
                        f"“{_FLAG_LABELS[column]}”只能填 1 或 0（或留空），不能是“{raw}”",
                        column,
                    )
                )
                value = False
            flags.append(value)

        name = row.name
        if not name:
            errors.append(RowError(line, "missing_name", "姓名为空", "name"))
        elif len(name) > 64:
            errors.append(RowError(line, "bad_name", "姓名超过 64 个字符", "name"))
        elif (problem := name_problem(name, residence_permit=flags[3])) is not None:
            errors.append(RowError(line, "bad_name", problem, "name"))

        deceased_on = None
        if row.deceased_on:
            raw = row.deceased_on
            try:
                if not _DATE_SHAPE.match(raw):
                    raise ValueError(raw)
                deceased_on = date.fromisoformat(raw)
            except ValueError:
                errors.append(
                    RowError(
                        line,
                        "bad_date",
                        f"死亡日期“{raw}”不是有效的 YYYY-MM-DD 日期",
                        "deceased_on",
                    )
                )
            else:
                if deceased_on > today:
                    errors.append(
                        RowError(
                            line,
                            "deceased_in_future",
                            f"死亡日期 {raw} 晚于今天（{today.isoformat()}）",
                            "deceased_on",
                        )
                    )
                elif birth is not None and deceased_on < birth:
                    errors.append(
                        RowError(
                            line, "deceased_before_birth", "死亡日期早于出生日期", "deceased_on"
                        )
                    )

        key = (village_id or 0, household_no)
        if existing is not None and village_id is not None and households.get(key) != existing[2]:
            errors.append(
                RowError(
                    line,
                    "person_in_other_household",
                    "此人已登记在其他户，清册不能直接迁户（请先办理户籍变更）",
                    "household_no",
                )
            )

        if len(errors) != mark:
            bad_lines += 1
            continue
        assert id_number is not None and birth is not None and village_id is not None
        student, employee_pension, employee_medical, residence_permit = flags
        if existing is None:
            if key not in households:
                plan.new_households[key] = None
            plan.new_persons.append(
                (
                    key,
                    id_number,
                    index_of(id_number, ID_NUMBER_INDEX),
                    name,
                    birth,
                    sex,
                    student,
                    employee_pension,
                    employee_medical,
                    residence_permit,
                    deceased_on,
                    categories,
                )
            )
            created += 1
            continue
        pid = existing[0]
        changed = (
            existing[4:]
            != (
                student,
                employee_pension,
                employee_medical,
                residence_permit,
                deceased_on,
            )
            or decrypt(existing[3], NAME_PURPOSE) != name
        )
        current = person_categories.get(pid)
        if current or categories:
            current = current or {}
            for category in categories:
                if category not in current:
                    plan.category_inserts.append((pid, category))
                    changed = True
            for category, (cid, cat_source) in current.items():
                if cat_source == source and category not in categories:
                    plan.category_deletes.append(cid)
                    changed = True
        if not changed:
            unchanged += 1
            continue
        # A category-only change is an update too (it touches updated_at).
        plan.updates.append(
            (name, student, employee_pension, employee_medical, residence_permit, deceased_on, pid)
        )
        updated += 1

    report.rows = total
    report.bad_rows = bad_lines
    report.created, report.updated, report.unchanged = created, updated, unchanged
    return plan


PERSON_COLUMNS = (
    "id",
    "household_id",
    "id_number",
    "id_number_index",
    "name",
    "birth_date",
    "sex",
    "student",
    "employee_pension",
    "employee_medical",
    "residence_permit",
    "deceased_on",
)
UPDATE_COLUMNS = (
    "name",
    "student",
    "employee_pension",
    "employee_medical",
    "residence_permit",
    "deceased_on",
)


def _write(session: Session, plan: _Plan, *, source: str) -> int:
    """Write the plan in bulk (roster_writer.py); return the number of households created."""
    writer = BulkWriter(session.connection())
    now = utcnow()
    households_t = cast(Table, Household.__table__)
    persons_t = cast(Table, Person.__table__)
    categories_t = cast(Table, PersonCategory.__table__)

    household_ids = dict(
        zip(
            plan.new_households,
            writer.allocate_ids(households_t, len(plan.new_households)),
            strict=True,
        )
    )
    writer.insert(
        households_t,
        ("id", "village_id", "household_no"),
        ((hid, vid, no) for (vid, no), hid in household_ids.items()),
        constants={"created_at": now},
    )
    missing = {p[0] for p in plan.new_persons} - household_ids.keys()
    if missing:  # members joining households that already exist
        household_ids.update(_household_ids(session.connection()))

    person_ids = writer.allocate_ids(persons_t, len(plan.new_persons))
    category_rows = [(pid, c, source) for pid, c in plan.category_inserts]
    for pid, p in zip(person_ids, plan.new_persons, strict=True):
        if p[11]:
            category_rows.extend((pid, c, source) for c in sorted(p[11]))
    writer.insert(
        persons_t,
        PERSON_COLUMNS,
        (
            (pid, household_ids[p[0]], *p[1:11])
            for pid, p in zip(person_ids, plan.new_persons, strict=True)
        ),
        constants={"created_at": now, "updated_at": now},
    )
    writer.update(persons_t, UPDATE_COLUMNS, plan.updates, constants={"updated_at": now})
    writer.delete(categories_t, plan.category_deletes)
    writer.insert(categories_t, ("person_id", "category", "source"), category_rows)
    # Core writes bypass the identity map: make the session reload anything it had cached.
    session.expire_all()
    return len(plan.new_households)


def _find(
    persons: dict[str, tuple[Any, ...]],
    indexes: Callable[[str, str], list[str]],
    id_number: str,
) -> tuple[Any, ...] | None:
    """The stored person with this ID number: its blind index under each configured key."""
    for value in indexes(id_number, ID_NUMBER_INDEX):
        found = persons.get(value)
        if found is not None:
            return found
    return None


def _household_ids(conn: Connection) -> dict[tuple[int, str], int]:
    return {
        (vid, no): hid
        for hid, vid, no in conn.execute(
            select(Household.id, Household.village_id, Household.household_no)
        )
    }
