"""Roster files (参保登记清册) in and out: CSV (UTF-8, BOM tolerated) and XLSX.

The columns are the contract of DESIGN.md "Roster import"; a header row is required and may use
the English column names or the Chinese aliases below, in any order. Every row carries the
file's own line number (CSV: the physical line the record starts on; XLSX: the sheet's row
number; the header is line 1) so an error report points at what the operator sees in an editor
or in Excel. Reading streams: nothing holds the whole file in memory.
"""

from __future__ import annotations

import csv
import io
import operator
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

from api.documents.cells import csv_row, xlsx_row

COLUMNS = (
    "town",
    "village",
    "household_no",
    "id_number",
    "name",
    "categories",
    "student",
    "employee_pension",
    "employee_medical",
    "residence_permit",
    "deceased_on",
)

HEADER_ALIASES: dict[str, str] = {
    "镇街": "town",
    "镇(街)": "town",
    "镇（街）": "town",
    "乡镇": "town",
    "乡镇(街道)": "town",
    "乡镇（街道）": "town",
    "村居": "village",
    "村": "village",
    "村(居)": "village",
    "村（居）": "village",
    "户号": "household_no",
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "公民身份号码": "id_number",
    "姓名": "name",
    "特殊群体": "categories",
    "特殊群体身份": "categories",
    "人员类别": "categories",
    "在校学生": "student",
    "职工养老": "employee_pension",
    "职工养老保险": "employee_pension",
    "职工医疗": "employee_medical",
    "职工医疗保险": "employee_medical",
    "居住证": "residence_permit",
    "死亡日期": "deceased_on",
}


class RosterRow(NamedTuple):
    """One data row as text, in `COLUMNS` order, with the file's line number.

    `problem` is set by a reader when the row itself is malformed (wrong number of cells).
    """

    line: int
    town: str
    village: str
    household_no: str
    id_number: str
    name: str
    categories: str
    student: str
    employee_pension: str
    employee_medical: str
    residence_permit: str
    deceased_on: str
    problem: str = ""

    @classmethod
    def from_mapping(cls, line: int, values: dict[str, Any]) -> RosterRow:
        """Build a row from a column → value mapping (missing columns are empty)."""
        return cls(line, *(_cell_text(values.get(c)) for c in COLUMNS))


class RosterFileError(Exception):
    """The file as a whole cannot be read as a roster (format, encoding, header)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _cell_text(value: Any) -> str:
    """A cell as the text the import validates (spreadsheets hand back numbers and dates)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _column_order(header: list[str]) -> list[int]:
    """Map the header to `COLUMNS` positions; refuse missing, unknown or repeated columns."""
    names = [HEADER_ALIASES.get(h.strip(), h.strip().lower()) for h in header]
    unknown = [h for h, n in zip(header, names, strict=True) if n not in COLUMNS and h.strip()]
    repeated = sorted({n for n in names if n in COLUMNS and names.count(n) > 1})
    missing = [c for c in COLUMNS if c not in names]
    problems = []
    if missing:
        problems.append("缺少列：" + "、".join(missing))
    if unknown:
        problems.append("无法识别的列：" + "、".join(unknown))
    if repeated:
        problems.append("重复的列：" + "、".join(repeated))
    if problems:
        raise RosterFileError("bad_header", "表头（第 1 行）不符合清册格式：" + "；".join(problems))
    return [names.index(c) for c in COLUMNS]


def _rows_from_cells(
    cells: Iterator[tuple[int, list[str]]], *, pad_short: bool = False
) -> Iterator[RosterRow]:
    """Turn (line, cells) into rows: the first non-empty row is the header.

    A CSV record with fewer or more fields than the header is malformed (a broken quote or a
    stray separator shifts every column after it); a spreadsheet row may simply end early
    where its trailing cells are empty (`pad_short`).
    """
    order: list[int] | None = None
    width = 0
    pick: Callable[[list[str]], Any] = operator.itemgetter(0)
    make = RosterRow._make  # 440k rows: skip the generated __new__'s keyword handling
    for line, raw in cells:
        if not any(raw):
            continue
        if order is None:
            if line != 1:
                raise RosterFileError("bad_header", "第 1 行必须是表头")
            order = _column_order(raw)
            width = len(raw)
            pick = operator.itemgetter(*order)
            continue
        if len(raw) != width:
            if len(raw) < width and pad_short:
                raw = raw + [""] * (width - len(raw))
            if len(raw) < width or any(raw[width:]):
                yield RosterRow._make([line, *[""] * len(COLUMNS), "bad_row_shape"])
                continue
        values = pick(raw)
        yield make((line, *values, ""))
    if order is None:
        raise RosterFileError("empty_file", "文件为空：没有表头")


def _csv_cells(stream: IO[str]) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(stream)
    line = 1
    try:
        for record in reader:
            yield line, list(map(str.strip, record))
            line = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise RosterFileError(
            "bad_encoding", f"第 {line} 行附近不是 UTF-8 编码，请另存为 UTF-8 CSV"
        ) from exc
    except csv.Error as exc:
        raise RosterFileError("bad_csv", f"第 {line} 行 CSV 格式错误：{exc}") from exc


def _xlsx_cells(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Rows of the first sheet. An XLSX is a zip of XML parts read lazily (read-only mode),
    so a file that is no zip at all, a truncated one, or one with a broken part can fail on
    opening or halfway through: every such failure is the file's, `unreadable` (exit 2)."""
    import zipfile
    import zlib
    from xml.etree.ElementTree import ParseError

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    broken = (
        InvalidFileException,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        ParseError,
        OSError,
        KeyError,
        ValueError,
        IndexError,
    )
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except broken as exc:
        raise RosterFileError("unreadable", f"无法读取 Excel 文件（{_why(exc)}）") from exc
    line = 0
    try:
        sheet = workbook.worksheets[0]
        for line, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield line, [_cell_text(v) for v in values]
    except broken as exc:
        raise RosterFileError(
            "unreadable", f"Excel 文件在第 {line + 1} 行附近损坏或不完整（{_why(exc)}）"
        ) from exc
    finally:
        workbook.close()


def _why(exc: BaseException) -> str:
    import zipfile

    if isinstance(exc, zipfile.BadZipFile):
        return "不是有效的 XLSX（zip）文件，或文件不完整"
    return f"{type(exc).__name__}: {exc}"[:200]


def read_roster(path: str | Path) -> Iterator[RosterRow]:
    """Stream the rows of a CSV or XLSX roster (by file extension)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        yield from _rows_from_cells(_xlsx_cells(path), pad_short=True)
    elif suffix in (".csv", ".txt"):
        try:
            stream = path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise RosterFileError("unreadable", f"无法打开文件：{exc.strerror}") from exc
        with stream:
            yield from _rows_from_cells(_csv_cells(stream))
    else:
        raise RosterFileError("unsupported_format", "只支持 CSV（UTF-8）和 XLSX 格式的清册")


def read_roster_text(text: str) -> Iterator[RosterRow]:
    """Rows of a CSV roster held in a string (tests, uploads)."""
    yield from _rows_from_cells(_csv_cells(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def write_roster(path: str | Path, rows: Iterable[RosterRow], *, fmt: str | None = None) -> int:
    """Write rows in the import format (CSV UTF-8 or XLSX); return how many were written."""
    path = Path(path)
    fmt = fmt or ("xlsx" if path.suffix.lower() == ".xlsx" else "csv")
    count = 0
    if fmt == "xlsx":
        import openpyxl

        workbook = openpyxl.Workbook(write_only=True)
        sheet = workbook.create_sheet("roster")
        sheet.append(list(COLUMNS))
        for row in rows:
            sheet.append(xlsx_row(row[1 : 1 + len(COLUMNS)]))
            count += 1
        workbook.save(path)
        return count
    if fmt != "csv":
        raise ValueError(f"unknown roster format {fmt!r}")
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(csv_row(row[1 : 1 + len(COLUMNS)]))
            count += 1
    return count
