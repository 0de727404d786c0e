"""Oversight API 督导: progress against the targets (town, finance, auditor) and the auditor's
read-only view. Routes stay thin: arguments → one service call → response."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from flask import Response, g

from api.clock import today
from api.db import get_session
from api.extensions.smorest import Blueprint
from api.oversight import audit, charts, export, progress
from api.oversight.schemas import AuditQuerySchema, ChartQuerySchema, ProgressQuerySchema
from api.policy.model import available_years

blp = Blueprint(
    "oversight",
    __name__,
    url_prefix="/api/v1/oversight",
    description="督导：征缴进度（对照任务目标）、图表与审计视图",
)
PROGRESS_READERS = ("town", "finance", "auditor")
AUDITORS = ("auditor",)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _report(args: dict[str, Any]) -> dict[str, Any]:
    as_of: date = args.get("date") or today()
    return progress.progress_report(
        get_session(),
        staff=g.staff,
        level=args.get("level", "district"),
        as_of=as_of,
        year=args.get("year") or max(available_years()),
        town_code=args.get("town"),
    )


@blp.route("/progress", methods=["GET"])
@blp.login_required(kind="staff", roles=PROGRESS_READERS)
@blp.arguments(ProgressQuerySchema, location="query")
@blp.doc(
    responses={
        200: {
            "description": "报告（JSON）或其 XLSX",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
)
def get_progress(args: dict[str, Any]) -> Any:
    """Progress against the targets (附件2) as of the end of a Beijing day: per district, town
    or village; persons, new enrollees and amounts against the target, by source, phase and
    day; share of target (basis points) and the forecast for the window's end. A town office
    sees its own town and villages only. `format=xlsx` downloads the same as a workbook."""
    report = _report(args)
    if args.get("format") == "xlsx":
        name = f"progress-{report['year']}-{report['level']}-{report['as_of']}.xlsx"
        return Response(
            export.progress_xlsx(report),
            content_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return report


@blp.route("/progress/chart.svg", methods=["GET"])
@blp.login_required(kind="staff", roles=PROGRESS_READERS)
@blp.arguments(ChartQuerySchema, location="query")
@blp.doc(
    responses={
        200: {"description": "SVG", "content": {"image/svg+xml": {"schema": {"type": "string"}}}}
    }
)
def get_chart(args: dict[str, Any]) -> Response:
    """`kind=cumulative`: each town's cumulative share of its target by day, with the target
    line; `kind=mix`: persons by source (channel mix) per town. SVG."""
    report = _report({**args, "level": "town"})
    svg = charts.cumulative_svg(report) if args["kind"] == "cumulative" else charts.mix_svg(report)
    return Response(svg, content_type="image/svg+xml; charset=utf-8")


@blp.route("/audit", methods=["GET"])
@blp.login_required(kind="staff", roles=AUDITORS)
@blp.arguments(AuditQuerySchema, location="query")
@blp.doc(
    responses={
        200: {
            "description": "一页（JSON，next_cursor）或全部导出（CSV/XLSX）",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
)
def get_audit(args: dict[str, Any]) -> Any:
    """The auditor's view (read-only): `kind` = refusal | notification | discrepancy | action;
    filters actor, action, town, date_from/date_to (Beijing days); pages by cursor
    (`limit`, `order`, `cursor` = the previous page's `next_cursor`). `format=csv|xlsx` exports
    every matching row, cells neutralised."""
    session = get_session()
    fmt = args.pop("format", "json")
    page_args: dict[str, Any] = {k: args.pop(k) for k in ("cursor", "limit", "order") if k in args}
    if fmt in ("csv", "xlsx"):
        rows = audit.audit_rows(session, **args)
        name = f"audit-{args['kind']}.{fmt}"
        body: Any = audit.to_csv(rows) if fmt == "csv" else audit.to_xlsx(rows, title=args["kind"])
        return Response(
            body,
            content_type="text/csv; charset=utf-8" if fmt == "csv" else XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    items, next_cursor = audit.audit_page(session, page_args=page_args, **args)
    response = Response(
        json.dumps(
            {"kind": args["kind"], "items": items, "next_cursor": next_cursor},
            ensure_ascii=False,
            default=str,
        ),
        content_type="application/json",
    )
    if next_cursor:
        response.headers["X-Next-Cursor"] = next_cursor
    return response
