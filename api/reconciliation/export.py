"""CSV and XLSX of a run's difference items, for finance's working papers.

Bill-derived text (out_trade_no of an unknown trade, statuses, reasons typed by staff) comes
from outside, so every cell passes `api.documents.cells` (a leading `=`, `+`, `-`, `@` is
neutralised). Amounts are written as yuan with two decimals, from integer fen via Decimal.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from api.documents.cells import csv_row, xlsx_row
from api.reconciliation.models import ReconciliationItem

HEADERS = [
    "差异编号", "渠道", "账单日期", "差异类型", "商户订单号", "商户退款单号", "账单金额（元）",
    "我方金额（元）", "账单状态", "我方状态", "补单结果", "处理状态", "处理方式", "处理说明",
    "经办人", "审批人",
]  # fmt: skip
AMOUNT_COLUMNS = (6, 7)


def _yuan(fen: int | None) -> str:
    return "" if fen is None else str((Decimal(fen) / 100).quantize(Decimal("0.01")))


def rows(items: Sequence[ReconciliationItem]) -> list[list[Any]]:
    return [
        [
            i.id,
            i.channel,
            i.bill_date.isoformat(),
            i.type,
            i.out_trade_no,
            i.out_refund_no or "",
            _yuan(i.bill_amount_fen),
            _yuan(i.our_amount_fen),
            i.bill_status or "",
            i.our_status or "",
            i.heal_result or "",
            i.status,
            i.resolution or "",
            i.reason or "",
            i.maker or "",
            i.checker or "",
        ]
        for i in items
    ]


def to_csv(items: Sequence[ReconciliationItem]) -> bytes:
    """UTF-8 with a BOM so Excel opens the Chinese headers correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    writer.writerows(csv_row(row) for row in rows(items))
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(items: Sequence[ReconciliationItem], *, title: str) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(HEADERS)
    for row in rows(items):
        sheet.append(
            xlsx_row(
                Decimal(v) if i in AMOUNT_COLUMNS and v != "" else v for i, v in enumerate(row)
            )
        )
    for column in sheet.iter_cols(min_row=2):
        for cell in column:
            if isinstance(cell.value, str):
                cell.number_format = "@"
            elif isinstance(cell.value, Decimal):
                cell.number_format = "0.00"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
