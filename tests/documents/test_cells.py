"""The one cell neutraliser every CSV/XLSX writer uses (issue 10, defect 6)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook

from api.documents.cells import csv_row, neutral, xlsx_row

HOSTILE = ['=HYPERLINK("http://x","y")', "+SUM(1,2)", "-2+3", "@SUM(1+1)", "\t=1+1", "\r=1"]


@pytest.mark.parametrize("text", HOSTILE)
def test_text_a_spreadsheet_would_evaluate_is_written_as_text(text: str) -> None:
    assert neutral(text) == "'" + text


@pytest.mark.parametrize(
    "value", ["王小明", "260.00", "-260.00", "+5", "12", 3, Decimal("-1.5"), None]
)
def test_names_numbers_and_amounts_are_untouched(value: object) -> None:
    assert neutral(value) == value


def test_csv_and_xlsx_rows_hold_no_formula() -> None:
    row = [*HOSTILE, "-260.00", Decimal("-260.00"), "a\x01b"]
    buffer = io.StringIO()
    csv.writer(buffer).writerow(csv_row(row))
    cells = next(csv.reader(io.StringIO(buffer.getvalue())))
    assert all(not c.startswith(("=", "+", "@", "\t", "\r")) for c in cells)
    assert cells[2] == "'-2+3" and cells[6] == "-260.00"

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(xlsx_row(row))  # the control character would make openpyxl raise
    saved = io.BytesIO()
    workbook.save(saved)
    loaded = load_workbook(io.BytesIO(saved.getvalue())).active
    assert loaded is not None
    values = [c.value for c in loaded[1]]
    assert all(c.data_type != "f" for c in loaded[1])
    assert values[0] == "'" + HOSTILE[0] and Decimal(str(values[7])) == Decimal("-260.00")
    assert values[8] == "a\ufffdb"
