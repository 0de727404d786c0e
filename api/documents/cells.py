"""Spreadsheet cells 表格单元格: every CSV or XLSX the project writes passes its cells here.

A spreadsheet program reads a text cell that starts with `=`, `+`, `-` or `@` (or a tab or a
carriage return before one) as a formula: `=HYPERLINK(…)` in a name becomes a live link in
the bureau's copy of the information return, `-2+3` a sum. Text from outside (names from a
roster, channel fields, callback bodies) is therefore written with a leading apostrophe, the
form OWASP ("CSV Injection") recommends and Excel shows as plain text. Numbers stay numbers:
`-260.00` (a reversal's amount) is not a formula and must still sum.

XLSX is the same text, plus: openpyxl refuses control characters a workbook cannot hold
(it raises), so those are replaced by U+FFFD rather than failing the whole export.

New writers use `csv_row` / `xlsx_row`; nothing else writes cells.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
# The characters openpyxl.cell.cell.ILLEGAL_CHARACTERS_RE refuses (XML 1.0 forbids them).
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutral(value: Any) -> Any:
    """`value` as a cell that cannot be read as a formula; non-text is returned as is."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_STARTS)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    """A row for `csv.writer`, every text cell neutralised."""
    return [neutral(v) for v in values]


def xlsx_row(values: Iterable[Any]) -> list[Any]:
    """A row for openpyxl's `append`, neutralised and stripped of characters XLSX cannot hold."""
    out: list[Any] = []
    for value in values:
        value = neutral(value)
        if isinstance(value, str):
            value = _XLSX_ILLEGAL.sub("\ufffd", value)
        out.append(value)
    return out
