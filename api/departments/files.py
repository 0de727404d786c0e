"""Reading a department list file (CSV UTF-8 or XLSX): one row a person, a header row first.

Columns (English or Chinese header, any order): `id_number` 身份证号, `name` 姓名, `category`
类别 (a category or event key, e.g. dibao, death), `effective_on` 生效日期, `document_no` 文号.
Each row keeps its line number in the file (the header is line 1). Cells are read as text;
formulas are never evaluated (openpyxl data_only reads the cached value).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from api.errors import InvalidInput

MAX_ROWS = 200_000
COLUMNS = ("id_number", "name", "category", "effective_on", "document_no")
ALIASES = {
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "公民身份号码": "id_number",
    "姓名": "name",
    "类别": "category",
    "人员类别": "category",
    "事件": "category",
    "类别或事件": "category",
    "effective_date": "effective_on",
    "生效日期": "effective_on",
    "死亡日期": "effective_on",
    "日期": "effective_on",
    "文号": "document_no",
    "文件编号": "document_no",
    "批准文号": "document_no",
}
REQUIRED = ("id_number", "name", "category")


@dataclass(frozen=True)
class ListRow:
    line: int
    id_number: str
    name: str
    category: str
    effective_on: str
    document_no: str


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _csv(data: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("文件不是 UTF-8 编码，请另存为 UTF-8 CSV", code="bad_encoding") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    try:
        for record in reader:
            yield line, [c.strip() for c in record]
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInput(f"第 {line} 行 CSV 格式错误", code="bad_csv") from exc


def _xlsx(data: bytes) -> Iterator[tuple[int, list[str]]]:
    import zipfile

    import openpyxl

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise InvalidInput("无法读取 Excel 文件", code="unreadable") from exc
    try:
        sheet = workbook.worksheets[0]
        for line, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield line, [_text(v) for v in values]
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, IndexError) as exc:
        raise InvalidInput("Excel 文件损坏或不完整", code="unreadable") from exc
    finally:
        workbook.close()


def read_list(file_name: str, data: bytes) -> list[ListRow]:
    """The rows of a list file; a bad header or an unreadable file is a 422 for the file."""
    lower = file_name.lower()
    if lower.endswith(".xlsx"):
        cells = _xlsx(data)
    elif lower.endswith((".csv", ".txt")):
        cells = _csv(data)
    else:
        raise InvalidInput("只支持 CSV（UTF-8）和 XLSX 格式的名单", code="unsupported_format")
    order: dict[str, int] | None = None
    rows: list[ListRow] = []
    for line, raw in cells:
        if not any(raw):
            continue
        if order is None:
            names = [ALIASES.get(h.strip(), h.strip().lower()) for h in raw]
            missing = [c for c in REQUIRED if c not in names]
            if line != 1 or missing:
                raise InvalidInput(
                    "表头（第 1 行）应包含：身份证号、姓名、类别（可选：生效日期、文号）",
                    code="bad_header",
                    errors={"missing": missing},
                )
            order = {c: names.index(c) for c in COLUMNS if c in names}
            continue
        if len(rows) >= MAX_ROWS:
            raise InvalidInput(f"名单超过 {MAX_ROWS} 行", code="too_many_rows")
        cell = {c: (raw[i] if i < len(raw) else "") for c, i in order.items()}
        rows.append(
            ListRow(
                line=line,
                id_number=cell.get("id_number", ""),
                name=cell.get("name", ""),
                category=cell.get("category", ""),
                effective_on=cell.get("effective_on", ""),
                document_no=cell.get("document_no", ""),
            )
        )
    if order is None:
        raise InvalidInput("文件为空：没有表头", code="empty_file")
    return rows
