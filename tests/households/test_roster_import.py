"""Roster import: all-or-nothing, --skip-bad, line numbers and reasons, re-import as update."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.audit.models import AuditEvent
from api.households.district import ensure_district
from api.households.models import Household, Person, PersonCategory
from api.households.roster import import_roster
from api.households.roster_files import (
    COLUMNS,
    RosterFileError,
    read_roster,
    read_roster_text,
)
from tests.households.household_factories import id_number

FIXTURES = Path(__file__).parent / "fixtures"
MIXED = FIXTURES / "roster_mixed.csv"
TODAY = date(2019, 11, 5)
HEADER = ",".join(COLUMNS)

# The bad rows of roster_mixed.csv: (line, code), in file order.
MIXED_ERRORS = [
    (4, "id_number_check"),
    (5, "unknown_category"),
    (6, "unknown_town"),
    (7, "unknown_village"),
    (8, "duplicate_id_number"),
    (9, "missing_name"),
    (10, "bad_boolean"),
    (11, "bad_date"),
    (12, "deceased_in_future"),
    (14, "id_number_format"),
]
MIXED_GOOD_IDS = {
    "370406196803120235",  # line 2
    "370406197007020246",  # line 3
    "370406194001010430",  # line 13 (village given by its code)
    "370406199606060441",  # line 15
}


@pytest.fixture
def district(session: Session) -> Session:
    ensure_district(session)
    return session


def _xlsx_copy(csv_path: Path, target: Path) -> Path:
    """The same roster as an Excel file (row numbers = the CSV's line numbers)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for line in csv_path.read_text(encoding="utf-8-sig").splitlines():
        sheet.append(line.split(","))
    workbook.save(target)
    return target


def _roster(path: Path, fmt: str, tmp_path: Path) -> Path:
    return path if fmt == "csv" else _xlsx_copy(path, tmp_path / f"{path.stem}.xlsx")


def _persons(session: Session) -> dict[str, Person]:
    return {p.id_number: p for p in session.scalars(select(Person))}


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def row(
    town: str = "西集镇", village: str = "赵官庄村", household: str = "0001", **values: str
) -> str:
    """One CSV data line with defaults for everything not given."""
    data = {
        "town": town,
        "village": village,
        "household_no": household,
        "id_number": values.pop("id_number"),
        "name": values.pop("name", "张三"),
        "categories": values.pop("categories", ""),
        "student": "0",
        "employee_pension": "0",
        "employee_medical": "0",
        "residence_permit": "0",
        "deceased_on": "",
    }
    data.update(values)
    return ",".join(data[c] for c in COLUMNS)


def _import(session: Session, text: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return import_roster(session, read_roster_text(text), today=TODAY, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_bad_rows_refuse_the_whole_file(district: Session, fmt: str, tmp_path: Path) -> None:
    session = district
    report = import_roster(
        session, read_roster(_roster(MIXED, fmt, tmp_path)), today=TODAY, file_name="m"
    )

    assert report.refused and not report.written
    assert [(e.line, e.code) for e in report.errors] == MIXED_ERRORS
    assert report.rows == 14 and report.bad_rows == 10
    assert (report.created, report.updated, report.skipped) == (0, 0, 0)
    assert _count(session, Person) == 0
    assert _count(session, Household) == 0
    assert _count(session, PersonCategory) == 0
    by_line = {e.line: e for e in report.errors}
    assert by_line[8].message == "身份证号与第 2 行重复"
    assert by_line[7].message == "西集镇没有村居“不存在村”"
    assert "2030-01-01" in by_line[12].message


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_skip_bad_keeps_exactly_the_good_rows(district: Session, fmt: str, tmp_path: Path) -> None:
    session = district
    report = import_roster(
        session,
        read_roster(_roster(MIXED, fmt, tmp_path)),
        skip_bad=True,
        today=TODAY,
        file_name="mixed",
    )

    assert report.written and not report.refused
    assert [(e.line, e.code) for e in report.errors] == MIXED_ERRORS
    assert (report.created, report.updated, report.unchanged, report.skipped) == (4, 0, 0, 10)
    assert report.households_created == 3
    persons = _persons(session)
    assert set(persons) == MIXED_GOOD_IDS
    fang = persons["370406197007020246"]
    assert fang.category_keys == {"dibao", "disabled_severe"}
    assert {c.source for c in fang.categories} == {"roster"}
    assert fang.household_id == persons["370406196803120235"].household_id
    assert fang.birth_date == date(1970, 7, 2) and fang.sex == "F"
    zhou = persons["370406194001010430"]
    assert zhou.deceased_on == date(2019, 3, 1)
    assert zhou.household.village.name == "杨山村"  # the village was given by its code
    zheng = persons["370406199606060441"]
    assert (zheng.student, zheng.employee_pension, zheng.residence_permit) == (True, False, True)


def test_every_import_is_audited_without_id_numbers(district: Session) -> None:
    session = district
    import_roster(session, read_roster(MIXED), today=TODAY, file_name="roster_mixed.csv")
    import_roster(session, read_roster(MIXED), skip_bad=True, today=TODAY, file_name="again.csv")

    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "roster.import").order_by(AuditEvent.id)
    ).all()
    assert [(e.outcome, e.detail["file_name"]) for e in events] == [
        ("refused", "roster_mixed.csv"),
        ("ok", "again.csv"),
    ]
    assert events[1].detail["created"] == 4 and events[1].detail["skipped"] == 10
    dumped = json.dumps([e.detail for e in events], ensure_ascii=False)
    assert not re.search(r"\d{17}[\dX]", dumped)


def test_reimport_updates_instead_of_duplicating(district: Session) -> None:
    session = district
    a, b, c, d = (id_number(date(1960 + i, 1, 2), seq=900 + i) for i in range(4))
    first = "\n".join(
        [
            HEADER,
            row(id_number=a, name="张伟"),
            row(id_number=b, name="李芳", categories="dibao;disabled_severe"),
            row(id_number=c, name="王强", household="0002"),
        ]
    )
    assert _import(session, first).created == 3
    # A department's mark (another source) must survive a roster re-import.
    b_id = _persons(session)[b].id
    session.add(PersonCategory(person_id=b_id, category="youfu", source="民政"))
    session.flush()

    changed = "\n".join(
        [
            HEADER,
            row(id_number=a, name="张卫"),  # renamed
            row(id_number=b, name="李芳", categories="dibao"),  # one category dropped
            row(id_number=c, name="王强", household="0002", deceased_on="2019-10-01"),  # died
            row(id_number=d, name="赵敏", household="0002", employee_medical="1"),  # new
        ]
    )
    report = _import(session, changed)
    assert (report.created, report.updated, report.unchanged) == (1, 3, 0)
    assert report.households_created == 0

    persons = _persons(session)
    assert len(persons) == 4 and _count(session, Person) == 4
    assert persons[a].name == "张卫"
    assert {(k.category, k.source) for k in persons[b].categories} == {
        ("dibao", "roster"),
        ("youfu", "民政"),
    }
    assert persons[c].deceased_on == date(2019, 10, 1)
    assert persons[d].employee_medical and persons[d].household_id == persons[c].household_id

    again = _import(session, changed)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)


def test_person_cannot_move_household_through_a_roster(district: Session) -> None:
    session = district
    a, b = id_number(date(1970, 3, 3), seq=950), id_number(date(1972, 4, 4), seq=951)
    _import(session, "\n".join([HEADER, row(id_number=a, household="0001")]))

    report = _import(
        session,
        "\n".join([HEADER, row(id_number=b, household="0002"), row(id_number=a, household="0002")]),
    )
    assert report.refused
    assert [(e.line, e.code) for e in report.errors] == [(3, "person_in_other_household")]
    assert set(_persons(session)) == {a}  # b was not written either: all or nothing


def test_unknown_town_and_duplicate_id_are_reported_per_line(district: Session) -> None:
    session = district
    a = id_number(date(1980, 1, 1), seq=960)
    report = _import(
        session,
        "\n".join(
            [
                HEADER,
                row(id_number=a),
                row(town="不存在镇", id_number=id_number(date(1981, 1, 1), seq=961)),
                row(id_number=a.lower(), household="0009"),
            ]
        ),
    )
    assert [(e.line, e.code) for e in report.errors] == [
        (3, "unknown_town"),
        (4, "duplicate_id_number"),
    ]


def test_chinese_headers_and_category_labels_are_accepted(district: Session) -> None:
    session = district
    a = id_number(date(1950, 5, 5), seq=970)
    header = "镇街,村居,户号,身份证号,姓名,特殊群体,在校学生,职工养老,职工医疗,居住证,死亡日期"
    report = _import(session, f"{header}\n西集镇,赵官庄村,0001,{a},钱七,低保；特困,0,0,0,0,")
    assert report.created == 1 and not report.errors
    assert _persons(session)[a].category_keys == {"dibao", "tekun"}


def test_header_problems_refuse_the_file() -> None:
    with pytest.raises(RosterFileError) as missing:
        list(read_roster_text("town,village,household_no,id_number,name\n"))
    assert missing.value.code == "bad_header" and "categories" in missing.value.message
    with pytest.raises(RosterFileError) as unknown:
        list(read_roster_text(HEADER + ",phone\n"))
    assert unknown.value.code == "bad_header" and "phone" in unknown.value.message
    with pytest.raises(RosterFileError) as empty:
        list(read_roster_text(""))
    assert empty.value.code == "empty_file"


def test_line_numbers_follow_the_file_with_blank_lines_and_quoted_newlines(
    district: Session,
) -> None:
    session = district
    a = id_number(date(1966, 6, 6), seq=980)
    text = "\n".join(
        [
            HEADER,
            "",
            row(id_number=a, name='"张\n三"'),  # a quoted name over two lines (3 and 4)
            row(id_number=id_number(date(1967, 1, 1), seq=981), student="yes"),
            "西集镇,赵官庄村,0001,1,2",  # too few fields
        ]
    )
    report = _import(session, text)
    assert [(e.line, e.code) for e in report.errors] == [
        (3, "bad_name"),
        (5, "bad_boolean"),
        (6, "bad_row_shape"),
    ]


def test_bad_encoding_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes((HEADER + "\n西集镇,赵官庄村,0001,1,张三,,0,0,0,0,\n").encode("gbk"))
    with pytest.raises(RosterFileError) as error:
        list(read_roster(path))
    assert error.value.code == "bad_encoding"


def test_dry_run_counts_but_writes_nothing(district: Session) -> None:
    session = district
    report = import_roster(
        session, read_roster(MIXED), skip_bad=True, dry_run=True, today=TODAY, file_name="m"
    )
    assert report.dry_run and not report.written
    assert (report.created, report.skipped, report.households_created) == (4, 10, 3)
    assert _count(session, Person) == 0


def test_implausible_names_are_refused_and_real_ones_kept(district: Session) -> None:
    """Issue 10, defect 6: `=HYPERLINK(…)` and the like passed the import and came out live in
    the exports. A name is Han characters with `·` between parts, or for a residence-permit
    holder also Latin letters and spaces (DOMAIN.md "Names")."""
    session = district
    bad = [
        '"=HYPERLINK(""http://x"",""y"")"',
        "+SUM(1;2)",
        "-2+3",
        "@SUM(1+1)",
        "王|明",
        "张\x07三",
    ]
    good = [
        ("阿依古丽·买买提", "0"),
        ("John Smith", "1"),
        ("Anna-Maria O'Neil", "1"),
        ("王小明", "0"),
    ]
    lines = [HEADER]
    for seq, name in enumerate(bad, start=990):
        lines.append(row(id_number=id_number(date(1970, 1, 1), seq=seq), name=name))
    lines.append(row(id_number=id_number(date(1971, 1, 1), seq=996), name="John Smith"))
    report = _import(session, "\n".join(lines))
    assert [(e.line, e.code) for e in report.errors] == [(n, "bad_name") for n in range(2, 9)]

    lines = [HEADER]
    for seq, (name, permit) in enumerate(good, start=900):
        lines.append(
            row(id_number=id_number(date(1972, 1, 1), seq=seq), name=name, residence_permit=permit)
        )
    report = _import(session, "\n".join(lines))
    assert not report.errors and report.created == len(good)
    assert {p.name for p in _persons(session).values()} >= {n for n, _ in good}
