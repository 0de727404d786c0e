"""Tax endpoints: acknowledgements from the tax side, delivery monitoring, information return.

`POST /api/v1/tax/acknowledgements` (role tax) — the tax side's consumer reports what it booked
or rejected. `GET /api/v1/tax/records` (finance, tax, auditor) — records by state, e.g.
`?status=unacknowledged&older_than_minutes=30` or `?status=dead`. `GET /api/v1/tax/summary`.
`GET /api/v1/tax/export` (finance, tax) — 征缴信息回传 file with full ID numbers, audited.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, g, request
from flask.views import MethodView

from api.audit.service import record as audit
from api.db import get_session
from api.extensions.smorest import Blueprint
from api.payments.outbox import service
from api.payments.outbox.export import render
from api.payments.outbox.schemas import (
    AcknowledgementBatchSchema,
    AcknowledgementResultSchema,
    ExportQuerySchema,
    RecordPageSchema,
    RecordQuerySchema,
    SummarySchema,
)

blp = Blueprint(
    "tax",
    __name__,
    url_prefix="/api/v1/tax",
    description="税务端对账队列：回执、投递监控、信息回传",
)

MONITOR_ROLES = ("finance", "tax", "auditor")


def _actor() -> str:
    return f"staff:{g.staff.username}"


@blp.route("/acknowledgements")
class Acknowledgements(MethodView):
    @blp.login_required(kind="staff", roles=("tax",))
    @blp.arguments(AcknowledgementBatchSchema)
    @blp.response(200, AcknowledgementResultSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Acknowledge booked or rejected records (idempotent; unknown ids are reported)."""
        session = get_session()
        results = service.record_acknowledgements(
            session,
            [service.Acknowledgement(**a) for a in body["acknowledgements"]],
            received_from=_actor(),
        )
        session.commit()
        return {"results": results}


@blp.route("/records")
class Records(MethodView):
    @blp.login_required(kind="staff", roles=MONITOR_ROLES)
    @blp.arguments(RecordQuerySchema, location="query")
    @blp.response(200, RecordPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Records by delivery state: what is stuck, dead or not yet acknowledged."""
        minutes = args["older_than_minutes"]
        items, total = service.list_records(
            get_session(),
            status=args["status"],
            older_than=timedelta(minutes=minutes) if minutes is not None else None,
            town_code=args["town"],
            contribution_id=args["contribution_id"],
            limit=args["limit"],
            offset=args["offset"],
        )
        return {"total": total, "items": items}


@blp.route("/summary")
class Summary(MethodView):
    @blp.login_required(kind="staff", roles=MONITOR_ROLES)
    @blp.response(200, SummarySchema)
    def get(self) -> dict[str, int]:
        """Counts per state."""
        return service.counts_by_state(get_session())


EXPORT_CONTENT = {
    "text/csv": {"schema": {"type": "string", "description": "format=csv (UTF-8 with BOM)"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "format": "binary", "description": "format=xlsx"}
    },
}


@blp.route("/export")
class Export(MethodView):
    @blp.login_required(kind="staff", roles=("finance", "tax"))
    @blp.arguments(ExportQuerySchema, location="query")
    @blp.response(
        200,
        description="CSV (UTF-8 with BOM) or XLSX; full ID numbers",
        content_type="text/csv",
    )
    @blp.doc(responses={200: {"content": EXPORT_CONTENT}})
    def get(self, args: dict[str, Any]) -> Response:
        """Information return (征缴信息回传) of acknowledged contributions for the bureaus."""
        session = get_session()
        messages = service.acknowledged_for_export(
            session,
            insurance=args["insurance"],
            town_code=args["town"],
            date_from=args["date_from"],
            date_to=args["date_to"],
        )
        fmt = args["format"]
        town = args["town"] or "all"
        body = render(messages, fmt=fmt, title=f"{args['insurance']}-{town}")
        audit(
            session,
            actor=_actor(),
            action="tax.export",
            subject=f"{args['insurance']}:{town}",
            detail={
                "from": args["date_from"].isoformat(),
                "to": args["date_to"].isoformat(),
                "rows": len(messages),
                "format": fmt,
            },
            remote_addr=request.remote_addr,
        )
        session.commit()
        filename = (
            f"tax-return-{args['insurance']}-{town}-{args['date_from']:%Y%m%d}-"
            f"{args['date_to']:%Y%m%d}.{fmt}"
        )
        mimetype = (
            "text/csv; charset=utf-8"
            if fmt == "csv"
            else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        return Response(
            body,
            content_type=mimetype,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )
