"""SVG charts of the progress report 进度图 — written here, no plotting library (a few lines of
XML beat a dependency for two charts, and the output is plain text tests can parse).

- `cumulative`: one small panel per town, the cumulative share of its target by Beijing day
  (medical persons and pension persons), against the target line at 100 %.
- `mix`: one stacked bar per town (and the whole), medical persons by source (channel mix).

Chinese labels render where the viewer has a CJK font: `font-family` names "Noto Sans CJK SC"
first with common fallbacks. Every text is XML-escaped (names come from data).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from xml.sax.saxutils import escape, quoteattr

FONT = (
    "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'Microsoft YaHei', "
    "'PingFang SC', sans-serif"
)
SOURCE_COLOURS = (
    ("wechat", "微信", "#2aae67"),
    ("alipay", "支付宝", "#1677ff"),
    ("agent", "代办员代收", "#f59e0b"),
    ("counter", "柜台", "#8b5cf6"),
    ("government", "政府代缴", "#64748b"),
)
PENSION_COLOUR = "#d9480f"
MEDICAL_COLOUR = "#1c7ed6"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family={quoteattr(FONT)} font-size="12">\n'
        f"<title>{escape(title)}</title>\n"
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>\n'
        + "\n".join(body)
        + "\n</svg>\n"
    )


def _text(x: float, y: float, text: str, **attrs: Any) -> str:
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(str(v))}" for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(text)}</text>'


def _cumulative_points(
    days: list[dict[str, Any]], key: str, target: int | None, start: date, end: date
) -> list[tuple[int, float]]:
    """(day index, cumulative share of target in percent) for each day from start to end."""
    per_day = {d["date"]: d[key] for d in days}
    points, running = [], 0
    for i in range((end - start).days + 1):
        day = (start + timedelta(days=i)).isoformat()
        running += per_day.get(day, 0)
        points.append((i, running * 100 / target if target else 0.0))
    # days before the chart's start still count towards the first point
    before = sum(v for d, v in per_day.items() if d < start.isoformat())
    if before and target:
        points = [(i, v + before * 100 / target) for i, v in points]
    return points


def cumulative_svg(report: dict[str, Any]) -> str:
    """Small multiples: each town's cumulative share of target, target line at 100 %."""
    units = [u for u in report["units"] if u["level"] == "town"] or [report["total"]]
    start = date.fromisoformat(report["phases"][0]["start"])
    as_of = date.fromisoformat(report["as_of"])
    end = max(date.fromisoformat(report["forecast"]["window_end"]), start)
    end = min(max(as_of, end), start + timedelta(days=400))
    span = max((end - start).days, 1)
    cols, panel_w, panel_h, pad = 2, 420, 150, 36
    rows = (len(units) + cols - 1) // cols
    width, height = cols * panel_w + 20, rows * panel_h + 70
    body = [
        _text(12, 22, f"{report['year']}年度征缴累计进度（截至{report['as_of']}，占目标%）",
              font_size=15, font_weight="bold"),
        f'<line x1="14" y1="38" x2="34" y2="38" stroke="{MEDICAL_COLOUR}" stroke-width="2"/>',
        _text(38, 42, "医疗人数"),
        f'<line x1="104" y1="38" x2="124" y2="38" stroke="{PENSION_COLOUR}" stroke-width="2"/>',
        _text(128, 42, "养老人数"),
        '<line x1="194" y1="38" x2="214" y2="38" stroke="#c92a2a" stroke-dasharray="4 3"/>',
        _text(218, 42, "目标线 100%"),
    ]  # fmt: skip
    for n, unit in enumerate(units):
        x0 = 10 + (n % cols) * panel_w
        y0 = 56 + (n // cols) * panel_h
        plot_x, plot_y = x0 + pad, y0 + 22
        plot_w, plot_h = panel_w - pad - 20, panel_h - 50
        m, p = unit["medical"], unit["pension"]
        top = max(
            120.0,
            *(
                v
                for key, target in (
                    ("medical_persons", m["target_persons"]),
                    ("pension_persons", p["target_persons"]),
                )
                for _i, v in _cumulative_points(unit["days"], key, target, start, end)
            ),
        )

        def y_of(
            percent: float, plot_y: float = plot_y, plot_h: float = plot_h, top: float = top
        ) -> float:
            return plot_y + plot_h - percent / top * plot_h

        def x_of(i: int, plot_x: float = plot_x, plot_w: float = plot_w) -> float:
            return plot_x + i / span * plot_w

        share = m["share_bp"]
        label = f"{unit['name']}  医疗 {share / 100:.1f}%" if share is not None else unit["name"]
        body.append(f'<g class="town" data-code={quoteattr(unit["code"])}>')
        body.append(_text(x0 + 4, y0 + 14, label, font_weight="bold", class_="town-name"))
        body.append(
            f'<rect x="{plot_x}" y="{plot_y}" width="{plot_w}" height="{plot_h}" '
            'fill="none" stroke="#dee2e6"/>'
        )
        ty = y_of(100.0)
        body.append(
            f'<line class="target-line" x1="{plot_x}" y1="{ty:.1f}" x2="{plot_x + plot_w}" '
            f'y2="{ty:.1f}" stroke="#c92a2a" stroke-dasharray="4 3"/>'
        )
        body.append(_text(plot_x - 4, ty + 4, "100%", text_anchor="end", font_size=10))
        body.append(_text(plot_x - 4, plot_y + plot_h + 4, "0", text_anchor="end", font_size=10))
        for key, target, colour in (
            ("medical_persons", m["target_persons"], MEDICAL_COLOUR),
            ("pension_persons", p["target_persons"], PENSION_COLOUR),
        ):
            pts = _cumulative_points(unit["days"], key, target, start, min(end, as_of))
            if pts:
                path = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in pts)
                body.append(
                    f'<polyline class="series" points="{path}" fill="none" stroke="{colour}" '
                    'stroke-width="1.6"/>'
                )
        body.append(_text(plot_x, plot_y + plot_h + 16, start.isoformat(), font_size=10))
        body.append(
            _text(plot_x + plot_w, plot_y + plot_h + 16, end.isoformat(), font_size=10,
                  text_anchor="end")
        )  # fmt: skip
        body.append("</g>")
    return _svg(width, height, body, "征缴累计进度")


def mix_svg(report: dict[str, Any]) -> str:
    """Stacked bars: medical and pension persons by source, per town and in total."""
    units = [u for u in report["units"] if u["level"] == "town"] + [report["total"]]
    bar_w, label_w, row_h = 560, 120, 26
    width, height = label_w + bar_w + 140, 80 + len(units) * row_h * 2
    body = [
        _text(12, 22, f"{report['year']}年度缴费渠道构成（截至{report['as_of']}，人数）",
              font_size=15, font_weight="bold"),
    ]  # fmt: skip
    x = 12.0
    for _key, name, colour in SOURCE_COLOURS:
        body.append(f'<rect x="{x:.1f}" y="32" width="12" height="12" fill="{colour}"/>')
        body.append(_text(x + 16, 43, name))
        x += 24 + 13 * len(name)
    y = 60
    for unit in units:
        body.append(f'<g class="town" data-code={quoteattr(unit["code"])}>')
        body.append(_text(12, y + 15, unit["name"], class_="town-name", font_weight="bold"))
        for insurance, label in (("medical", "医疗"), ("pension", "养老")):
            key = f"{insurance}_persons"
            total = sum(unit["by_source"][s][key] for s, _n, _c in SOURCE_COLOURS)
            body.append(_text(label_w - 6, y + 15, label, text_anchor="end", font_size=10))
            left = float(label_w)
            for source, name, colour in SOURCE_COLOURS:
                count = unit["by_source"][source][key]
                if total and count:
                    w = count / total * bar_w
                    body.append(
                        f'<rect class="segment" x="{left:.1f}" y="{y + 3}" width="{w:.1f}" '
                        f'height="{row_h - 8}" fill="{colour}"><title>{escape(name)} {count}'
                        "</title></rect>"
                    )
                    left += w
            if not total:
                body.append(
                    f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 8}" '
                    'fill="#f1f3f5"/>'
                )
            body.append(_text(label_w + bar_w + 8, y + 15, f"{total}人", font_size=10))
            y += row_h
        body.append("</g>")
    return _svg(width, height, body, "缴费渠道构成")
