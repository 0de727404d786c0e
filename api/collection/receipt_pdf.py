"""The receipt as a printable PDF 《山亭区居民社会保险基金专用收据》 (A5 landscape).

Drawn with reportlab on one page, the CJK font embedded (`api.documents.pdf`): title, number,
village and town, household number, date, the persons (masked, as every staff view), each
premium, the total in figures and in capitals, the agent, and room for the village seal
(盖村居章 — the paper receipt's seal is applied by hand). A voided receipt prints 作废 and its
reason across it: it keeps its number and is never reissued.
"""

from __future__ import annotations

import io
from typing import Any

from api.documents.pdf import cjk_font

STATUS_WORDS = {"issued": "有效", "voided": "作废"}


def _yuan(fen: int) -> str:
    return f"{fen // 100:,}.{fen % 100:02d}"


def render_receipt(view: dict[str, Any], *, font_file: str = "") -> bytes:
    """The PDF bytes of a receipt view (`service.receipt_view`)."""
    from reportlab.lib.pagesizes import A5, landscape
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    font = cjk_font(font_file)
    buffer = io.BytesIO()
    width, height = landscape(A5)
    pdf = canvas.Canvas(buffer, pagesize=(width, height), pageCompression=1)
    pdf.setTitle(f"{view['title']} {view['receipt_no']}")
    pdf.setAuthor("山亭区城乡居民社会保险缴费系统")
    left, right = 15 * mm, width - 15 * mm

    y = height - 18 * mm
    pdf.setFont(font, 16)
    pdf.drawCentredString(width / 2, y, view["title"])
    y -= 9 * mm
    pdf.setFont(font, 9.5)
    village, town = view.get("village") or {}, view.get("town") or {}
    pdf.drawString(left, y, f"收据号：{view['receipt_no']}")
    pdf.drawRightString(right, y, f"开具日期：{view['issued_on']:%Y年%m月%d日}")
    y -= 6 * mm
    pdf.drawString(
        left,
        y,
        f"{town.get('name', '')} {village.get('name', '')}（{village.get('code', '')}）"
        f"  户号：{view.get('household_no') or ''}  缴费年度：{view['year']}",
    )
    y -= 5 * mm
    pdf.line(left, y, right, y)

    columns = (left, left + 30 * mm, left + 75 * mm, left + 130 * mm)
    y -= 6 * mm
    for x, heading in zip(columns, ("姓名", "身份证号码", "险种", "档次"), strict=True):
        pdf.drawString(x, y, heading)
    pdf.drawRightString(right, y, "金额（元）")
    for line in view.get("lines", []):
        y -= 6 * mm
        tier = f"{line['pension_tier']}元" if line.get("pension_tier") else "—"
        cells = (line["name"], line["id_number"], line["insurance_name"], tier)
        for x, cell in zip(columns, cells, strict=True):
            pdf.drawString(x, y, str(cell))
        pdf.drawRightString(right, y, _yuan(line["amount_fen"]))
    y -= 4 * mm
    pdf.line(left, y, right, y)
    y -= 7 * mm
    pdf.setFont(font, 11)
    pdf.drawString(left, y, f"合计（大写）：{view['amount_in_capitals']}")
    pdf.drawRightString(right, y, f"（小写）￥{_yuan(view['amount_fen'])}")
    y -= 10 * mm
    pdf.setFont(font, 9.5)
    agent = view.get("agent") or {}
    pdf.drawString(left, y, f"代办员：{agent.get('display_name', '')}")
    pdf.drawString(left + 70 * mm, y, "收款单位（盖村居章）：")
    y -= 6 * mm
    pdf.setFont(font, 8)
    pdf.drawString(
        left,
        y,
        "本收据由系统按缴费政策计算金额，代办员不得超标准收费或搭车收费。"
        f"状态：{STATUS_WORDS.get(view['status'], view['status'])}",
    )
    if view["status"] == "voided":
        pdf.saveState()
        pdf.setFont(font, 48)
        pdf.setFillColorRGB(0.85, 0.1, 0.1)
        pdf.translate(width / 2, height / 2)
        pdf.rotate(20)
        pdf.drawCentredString(0, 0, "作废")
        pdf.setFont(font, 11)
        pdf.drawCentredString(0, -10 * mm, f"作废原因：{view.get('void_reason') or ''}")
        pdf.restoreState()
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
