"""The progress report as an XLSX workbook 征缴进度表: every cell through `api.documents.cells`.

Sheets: 进度 (one row per unit against its target), 按来源 (by source), 按阶段 (by phase),
按日 (by Beijing day). Money in yuan with two decimals would be a float in a cell; the sheets
keep integer fen (分) like the API, and shares as percent text ("65.43%") built from basis
points with integer arithmetic.
"""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook

from api.documents.cells import xlsx_row

SOURCE_LABELS = {
    "wechat": "微信",
    "alipay": "支付宝",
    "agent": "代办员代收",
    "counter": "柜台",
    "government": "政府代缴",
}
FIGURE_HEADERS = ("养老人数", "养老新增人数", "养老金额(分)", "医疗人数", "医疗金额(分)")
FIGURES = (
    "pension_persons",
    "pension_new_persons",
    "pension_amount_fen",
    "medical_persons",
    "medical_amount_fen",
)


def percent(bp: int | None) -> str:
    """Basis points as percent text: 6543 → "65.43%"; no target → ""."""
    if bp is None:
        return ""
    return f"{bp // 100}.{bp % 100:02d}%"


def _blank(value: Any) -> Any:
    return "" if value is None else value


def progress_xlsx(report: dict[str, Any]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "进度"
    sheet.append(
        xlsx_row([f"{report['year']}年度居民养老、医疗保险征缴进度（截至{report['as_of']}）"])
    )
    sheet.append(
        xlsx_row(
            [
                "层级", "代码", "名称", "所属镇(街)",
                "养老人数", "养老目标", "养老完成率", "养老新增", "新增目标", "新增完成率",
                "养老预计(期末)", "医疗人数", "医疗目标", "医疗完成率", "医疗金额(分)",
                "医疗金额目标(分)", "金额完成率", "医疗预计人数(期末)", "医疗预计金额(分)",
            ]
        )
    )  # fmt: skip
    units = list(report["units"])
    if report["level"] != "district":
        units.append(report["total"])
    for u in units:
        p, m = u["pension"], u["medical"]
        sheet.append(
            xlsx_row(
                [
                    u["level"], u["code"], u["name"], _blank(u["town_name"]),
                    p["persons"], _blank(p["target_persons"]), percent(p["share_bp"]),
                    p["new_persons"], _blank(p["target_new_persons"]), percent(p["new_share_bp"]),
                    p["forecast_persons"], m["persons"], _blank(m["target_persons"]),
                    percent(m["share_bp"]), m["amount_fen"], _blank(m["target_amount_fen"]),
                    percent(m["amount_share_bp"]), m["forecast_persons"],
                    m["forecast_amount_fen"],
                ]
            )
        )  # fmt: skip
    f = report["forecast"]
    sheet.append(
        xlsx_row(
            [
                f"预计：按当前速度推算至{f['window_end']}，预计 = 已缴 × {f['total_days']} ÷ "
                f"{f['elapsed_days']}（自{f['collection_start']}起计天数）"
            ]
        )
    )

    by_source = book.create_sheet("按来源")
    by_source.append(xlsx_row(["代码", "名称", "来源", *FIGURE_HEADERS]))
    by_phase = book.create_sheet("按阶段")
    by_phase.append(xlsx_row(["代码", "名称", "阶段", *FIGURE_HEADERS]))
    by_day = book.create_sheet("按日")
    by_day.append(xlsx_row(["代码", "名称", "日期(北京时间)", *FIGURE_HEADERS]))
    labels = {p["key"]: p["label"] for p in report["phases"]}
    for u in units:
        for source, figures in u["by_source"].items():
            row = [u["code"], u["name"], SOURCE_LABELS.get(source, source)]
            by_source.append(xlsx_row(row + [figures[k] for k in FIGURES]))
        for phase, figures in u["by_phase"].items():
            row = [u["code"], u["name"], labels.get(phase, "窗口外")]
            by_phase.append(xlsx_row(row + [figures[k] for k in FIGURES]))
        for day in u["days"]:
            row = [u["code"], u["name"], day["date"]]
            by_day.append(xlsx_row(row + [day[k] for k in FIGURES]))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
