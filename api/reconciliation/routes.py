"""Finance API of reconciliation (对账): runs, the suspense pool and its workflow, exports.

Role finance for everything; auditor may read (GET) but not act. Routes stay thin.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g

from api.db import get_db, get_session
from api.extensions import cursor
from api.extensions.smorest import Blueprint
from api.payments import books
from api.reconciliation import export, refunds, threeway, workflow
from api.reconciliation.schemas import (
    ApproveSchema,
    AssignSchema,
    CommentSchema,
    ExportQuerySchema,
    ItemDetailSchema,
    ItemQuerySchema,
    ItemSchema,
    ResolveSchema,
    RunQuerySchema,
    RunSchema,
    ThreeWayQuerySchema,
)

blp = Blueprint(
    "reconciliation",
    __name__,
    url_prefix="/api/v1/finance/reconciliation",
    description="财务：对账批次、差异（挂账）处理与三方核对",
)
READERS = ("finance", "auditor")
ACTORS = ("finance",)


def _page_args(args: dict[str, Any]) -> dict[str, Any]:
    """Take the cursor arguments out of `args`, leaving the filters."""
    return {k: args.pop(k) for k in ("cursor", "limit", "order") if k in args}


def _actor() -> str:
    return f"staff:{g.staff.id}"


@blp.route("/runs", methods=["GET"])
@blp.login_required(kind="staff", roles=READERS)
@blp.arguments(RunQuerySchema, location="query")
@blp.response(200, RunSchema(many=True), headers=cursor.NEXT_CURSOR_HEADER)
def list_runs(args: dict[str, Any]) -> Any:
    """Reconciliation runs, newest first. Pages by cursor: `limit` (default 50, at most 500),
    `order` (desc | asc) and `cursor` = the `X-Next-Cursor` of the previous page."""
    page_args = _page_args(args)
    rows, next_cursor = workflow.list_runs(get_session(), page_args=page_args, **args)
    return rows, 200, cursor.headers(next_cursor, page_args)


@blp.route("/runs/<int:run_id>", methods=["GET"])
@blp.login_required(kind="staff", roles=READERS)
@blp.response(200, RunSchema)
def get_run(run_id: int) -> Any:
    """One run: bill file facts, totals and counts per outcome."""
    return workflow.get_run(get_session(), run_id)


@blp.route("/runs/<int:run_id>/export", methods=["GET"])
@blp.login_required(kind="staff", roles=READERS)
@blp.arguments(ExportQuerySchema, location="query")
@blp.doc(
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            }
        }
    }
)
def export_run(args: dict[str, Any], run_id: int) -> Response:
    """The run's difference items as CSV (UTF-8 BOM) or XLSX, cells neutralised."""
    session = get_session()
    run = workflow.get_run(session, run_id)
    items = workflow.run_items(session, run.id)
    name = f"reconciliation-{run.channel}-{run.bill_date.isoformat()}"
    if args["format"] == "xlsx":
        body = export.to_xlsx(items, title=name)
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        body, mime = export.to_csv(items), "text/csv; charset=utf-8"
    return Response(
        body,
        content_type=mime,
        headers={"Content-Disposition": f'attachment; filename="{name}.{args["format"]}"'},
    )


@blp.route("/items", methods=["GET"])
@blp.login_required(kind="staff", roles=READERS)
@blp.arguments(ItemQuerySchema, location="query")
@blp.response(200, ItemSchema(many=True), headers=cursor.NEXT_CURSOR_HEADER)
def list_items(args: dict[str, Any]) -> Any:
    """Difference items, newest first; `status=open` is the suspense pool (挂账). Filters:
    status, type, channel, date (the bill's Beijing date). Pages by cursor like the runs."""
    page_args = _page_args(args)
    rows, next_cursor = workflow.list_items(get_session(), page_args=page_args, **args)
    return rows, 200, cursor.headers(next_cursor, page_args)


@blp.route("/items/<int:item_id>", methods=["GET"])
@blp.login_required(kind="staff", roles=READERS)
@blp.response(200, ItemDetailSchema)
def get_item(item_id: int) -> Any:
    """One item with its history (created, healed, re-checked, assigned, resolved…)."""
    session = get_session()
    item = workflow.get_item(session, item_id)
    view = {column.key: getattr(item, column.key) for column in item.__table__.columns}
    view["history"] = workflow.item_history(session, item_id)
    return view


def _commit_view(item: Any) -> Any:
    session = get_session()
    session.commit()
    session.refresh(item)
    return item


@blp.route("/items/<int:item_id>/assign", methods=["POST"])
@blp.login_required(kind="staff", roles=ACTORS)
@blp.arguments(AssignSchema)
@blp.response(200, ItemSchema)
def assign(body: dict[str, Any], item_id: int) -> Any:
    """Assign the item to a colleague."""
    item = workflow.assign(get_session(), item_id, assignee=body["assignee"], actor=_actor())
    return _commit_view(item)


@blp.route("/items/<int:item_id>/comment", methods=["POST"])
@blp.login_required(kind="staff", roles=ACTORS)
@blp.arguments(CommentSchema)
@blp.response(200, ItemSchema)
def comment(body: dict[str, Any], item_id: int) -> Any:
    """Add a comment to the item's history."""
    item = workflow.comment(get_session(), item_id, text=body["comment"], actor=_actor())
    return _commit_view(item)


@blp.route("/items/<int:item_id>/resolve", methods=["POST"])
@blp.login_required(kind="staff", roles=ACTORS)
@blp.arguments(ResolveSchema)
@blp.response(200, ItemSchema)
def resolve(body: dict[str, Any], item_id: int) -> Any:
    """Resolve: healed | matched_manually | carried_over at once; refund | write_off wait for
    a second finance user's approval (maker–checker). `refund` is refused (409
    `refund_not_applicable`) where no refund applies (docs/reconciliation.md)."""
    item = workflow.resolve(
        get_session(), item_id, action=body["action"], reason=body["reason"], actor=_actor()
    )
    return _commit_view(item)


@blp.route("/items/<int:item_id>/approve", methods=["POST"])
@blp.login_required(kind="staff", roles=ACTORS)
@blp.arguments(ApproveSchema)
@blp.response(200, ItemSchema)
def approve(body: dict[str, Any], item_id: int) -> Any:
    """Approve (or with `approve: false` send back) a pending refund / write_off; the maker
    may not approve their own (403 maker_checker). An approved `write_off` is resolved; an
    approved `refund` decides the refund in the approval's transaction (`refund_pending`, with
    `refund_out_refund_no`), sends it at once, and is resolved when the refund succeeds."""
    session = get_session()
    try:
        item = workflow.approve(
            session, item_id, approved=body["approve"], note=body["note"], actor=_actor()
        )
    except workflow.MakerChecker:
        session.rollback()
        workflow.record_refusal(session, item_id, actor=_actor())
        session.commit()
        raise
    out_refund_no = item.refund_out_refund_no
    session.commit()
    if out_refund_no is not None:
        # Committed with its approval; sent at once (the worker retries what cannot be sent).
        db = get_db()
        books.send_refunds(db, current_app.config["SETTINGS"], [out_refund_no])
        refunds.settle_refund_items(db, only=[item_id])
        session = get_session()
    return workflow.get_item(session, item_id)


@blp.route("/three-way", methods=["GET"])
@blp.login_required(kind="staff", roles=READERS)
@blp.arguments(ThreeWayQuerySchema, location="query")
@blp.response(200)
def three_way(args: dict[str, Any]) -> Any:
    """三方核对 for a Beijing date: bill net = our net = tax-acknowledged net, per channel,
    with the records behind each difference (unresolved items, unacknowledged tax records)."""
    return {
        "date": args["date"].isoformat(),
        "channels": threeway.three_way_all(get_session(), args["date"], args.get("channel")),
    }
