"""Information return 征缴信息回传: acknowledged contributions for the HR bureau (人社, pension)
and the medical-insurance bureau (医保, medical) to book (记账), per town and date range.

DOMAIN.md "The process", step 7. The bureaus own these registrations, so the file carries full
ID numbers and names (they book by them); it is produced only for finance/tax staff, each
export is written to the audit log, and the file must travel by the bureaus' own channel.

Only records the tax side has acknowledged are included (a record not yet booked by tax is
not yet collected). A reversal (冲正, after a refund) is a row of its own with negative
amounts, so a column sum is the net collected.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from api.clock import BEIJING
from api.documents.cells import csv_row, xlsx_row
from api.payments.outbox.models import OutboxMessage
from api.payments.outbox.record import REVERSED

INSURANCE_NAMES = {"medical": "城乡居民基本医疗保险", "pension": "城乡居民基本养老保险"}
SOURCE_NAMES = {
    "wechat": "微信支付",
    "alipay": "支付宝",
    "agent": "代办员代收",
    "counter": "柜台",
    "government": "政府代缴",
}
HEADERS = [
    "记录编号",
    "业务类型",
    "缴费年度",
    "险种",
    "镇街代码",
    "村居代码",
    "户号",
    "公民身份号码",
    "姓名",
    "缴费档次(元)",
    "个人缴费金额(元)",
    "政府代缴金额(元)",
    "政府补贴金额(元)",
    "缴费渠道",
    "渠道交易号",
    "商户订单号",
    "缴费时间",
    "是否逾期补缴",
    "待遇享受开始日期",
    "冲正原记录编号",
    "税务确认时间",
]


AMOUNT_COLUMNS = {10, 11, 12}


def yuan(fen: int) -> str:
    """Exact yuan text from integer fen ("-260.00"); no float ever touches the amount."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def rows(messages: Sequence[OutboxMessage]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for m in messages:
        r = m.record
        sign = -1 if r["event"] == REVERSED else 1
        acknowledged = m.first_acknowledged_at
        out.append(
            [
                r["id"],
                "冲正" if r["event"] == REVERSED else "缴费",
                r["year"],
                INSURANCE_NAMES.get(r["insurance"], r["insurance"]),
                r["town_code"],
                r["village_code"],
                r["household_no"],
                r["id_number"],
                r["name"],
                r["pension_tier"] if r["pension_tier"] is not None else "",
                yuan(sign * r["amount_fen"]),
                yuan(sign * r["government_pays_fen"]),
                yuan(sign * r["subsidy_fen"]),
                SOURCE_NAMES.get(r["source"], r["source"]),
                r["channel_transaction_id"] or "",
                r["out_trade_no"] or "",
                r["paid_at"][:19].replace("T", " "),
                "是" if r["late"] else "否",
                r["benefit_start"],
                r["reverses"] or "",
                acknowledged.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
                if acknowledged
                else "",
            ]
        )
    return out


def to_csv(messages: Sequence[OutboxMessage]) -> bytes:
    """UTF-8 with a BOM, so Excel as used in the bureaus opens the Chinese headers correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    # ID numbers and order numbers are text: written as is (never as numbers).
    writer.writerows(csv_row(row) for row in rows(messages))
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(messages: Sequence[OutboxMessage], *, title: str) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(HEADERS)
    for row in rows(messages):
        # Amounts as exact decimals so the bureau can sum them (Decimal from text, no float).
        sheet.append(xlsx_row(Decimal(v) if i in AMOUNT_COLUMNS else v for i, v in enumerate(row)))
    for column in sheet.iter_cols(min_row=2):
        for cell in column:
            if isinstance(cell.value, str):
                cell.number_format = "@"  # ID numbers, transaction ids: text, Excel would round
            elif isinstance(cell.value, Decimal):
                cell.number_format = "0.00"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def render(messages: Sequence[OutboxMessage], *, fmt: str, title: str) -> bytes:
    if fmt == "xlsx":
        return to_xlsx(messages, title=title)
    return to_csv(messages)
