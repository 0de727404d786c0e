"""The auditor's view 审计视图 (read-only): refusals, forged notifications, discrepancies and
staff actions, one kind per page, paged by an id cursor (`api.extensions.cursor`).

Kinds (each from its owner's service functions, each with its own id space, hence one kind per
request — a cursor over one index each, never an offset):

- `refusal` — audit events whose outcome is not "ok": access refused (403, any endpoint:
  `api.auth.guards.record_access_refusal`), maker–checker self-approvals, refused roster files
  and bindings, …
- `notification` — the callback log's rejected notifications (forged signature, wrong app or
  merchant, amounts that do not match the order — an over-standard amount is refused there).
- `discrepancy` — reconciliation items (对账差异), bill against our books.
- `action` — staff actions: audit events with outcome "ok".

Filters: actor (audit kinds), date range (Beijing days: event time, notification receipt,
bill date), town (audit kinds: the events of that town's office and agents). Notifications
and bill differences belong to a channel, not to a town before they are matched: a town filter
on them is a 422 `filter_not_applicable`. Nothing here shows a name or an ID number: audit
details are masked by their writers; notification bodies are not shown at all.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any

from openpyxl import Workbook
from sqlalchemy.orm import Session

from api.audit.models import AuditEvent
from api.audit.service import events_query
from api.auth.service import staff_actors_of_town
from api.clock import BEIJING
from api.documents.cells import csv_row, xlsx_row
from api.extensions.cursor import keyset, page
from api.oversight.errors import NotApplicable
from api.payments.service import list_notifications, notifications_query
from api.reconciliation.workflow import item_query

KINDS = ("refusal", "notification", "discrepancy", "action")
EXPORT_LIMIT = 100_000
COLUMNS = (
    "kind", "id", "at", "actor", "action", "subject", "outcome", "reason", "amount_fen", "detail",
)  # fmt: skip
HEADERS = (
    "类别", "编号", "时间(北京)", "操作人", "事项", "对象", "结果", "原因", "金额(分)", "详情",
)  # fmt: skip


def _beijing(day: date) -> datetime:
    return datetime.combine(day, time(0), BEIJING)


def _at(value: datetime | None) -> str | None:
    return value.astimezone(BEIJING).isoformat(timespec="seconds") if value else None


def _audit_query(kind: str, session: Session, filters: dict[str, Any]) -> Any:
    actors = None
    if filters.get("town"):
        actors = staff_actors_of_town(session, town_code=filters["town"])
    return events_query(
        refused=kind == "refusal",
        actor=filters.get("actor"),
        actors=actors,
        action=filters.get("action"),
        since=_beijing(filters["date_from"]) if filters.get("date_from") else None,
        before=_beijing(filters["date_to"] + timedelta(days=1)) if filters.get("date_to") else None,
    )


def _event_view(kind: str, e: AuditEvent) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": e.id,
        "at": _at(e.at),
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "outcome": e.outcome,
        "reason": (e.detail or {}).get("code") or (e.detail or {}).get("reason"),
        "amount_fen": None,
        "detail": e.detail or {},
    }


def _notification_view(n: Any) -> dict[str, Any]:
    return {
        "kind": "notification",
        "id": n.id,
        "at": _at(n.received_at),
        "actor": f"gateway:{n.channel}",
        "action": f"notify_{n.kind or 'unknown'}",
        "subject": f"order:{n.out_trade_no}" if n.out_trade_no else "",
        "outcome": n.outcome,
        "reason": n.reason,
        "amount_fen": n.amount_fen,
        "detail": {
            "channel": n.channel,
            "signature_valid": n.signature_valid,
            "remote_addr": n.remote_addr,
            "detail": n.detail,
        },
    }


def _item_view(i: Any) -> dict[str, Any]:
    return {
        "kind": "discrepancy",
        "id": i.id,
        "at": _at(i.created_at),
        "actor": "system",
        "action": f"reconcile_{i.side}",
        "subject": f"order:{i.out_trade_no}",
        "outcome": i.status,
        "reason": i.type,
        "amount_fen": i.bill_amount_fen,
        "detail": {
            "channel": i.channel,
            "bill_date": i.bill_date.isoformat(),
            "bill_amount_fen": i.bill_amount_fen,
            "our_amount_fen": i.our_amount_fen,
            "bill_status": i.bill_status,
            "our_status": i.our_status,
            "resolution": i.resolution,
            "maker": i.maker,
            "checker": i.checker,
        },
    }


def _check(kind: str, filters: dict[str, Any]) -> None:
    if kind in ("notification", "discrepancy"):
        for name in ("town", "actor", "action"):
            if filters.get(name):
                raise NotApplicable(f"“{name}”筛选不适用于此类别（{kind}）", errors={name: [kind]})


def audit_page(
    session: Session, *, kind: str, page_args: dict[str, Any], **filters: Any
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `kind` (newest first unless order=asc) and the next cursor."""
    _check(kind, filters)
    if kind == "notification":
        rows, cursor = list_notifications(
            session,
            page_args=page_args,
            outcome="rejected",
            date_from=filters.get("date_from"),
            date_to=filters.get("date_to"),
        )
        return [_notification_view(n) for n in rows], cursor
    if kind == "discrepancy":
        query = item_query(date_from=filters.get("date_from"), date_to=filters.get("date_to"))
        id_column = query.selected_columns[0].table.c.id
        items = session.scalars(keyset(query, id_column, page_args)).all()
        shown, cursor = page(items, page_args, id_of=lambda i: i.id)
        return [_item_view(i) for i in shown], cursor
    query = _audit_query(kind, session, filters)
    events = session.scalars(keyset(query, AuditEvent.id, page_args)).all()
    shown_events, cursor = page(events, page_args, id_of=lambda e: e.id)
    return [_event_view(kind, e) for e in shown_events], cursor


def audit_rows(session: Session, *, kind: str, **filters: Any) -> list[dict[str, Any]]:
    """Every matching row for an export (newest first, at most EXPORT_LIMIT)."""
    args = {"limit": EXPORT_LIMIT, "order": "desc"}
    _check(kind, filters)
    if kind == "notification":
        query = notifications_query(
            outcome="rejected", date_from=filters.get("date_from"), date_to=filters.get("date_to")
        )
        rows = session.scalars(keyset(query, query.selected_columns[0].table.c.id, args)).all()
        return [_notification_view(n) for n in rows[:EXPORT_LIMIT]]
    items, _ = audit_page(session, kind=kind, page_args=args, **filters)
    return items


def _cells(row: dict[str, Any]) -> list[Any]:
    out = []
    for column in COLUMNS:
        value = row[column]
        out.append("" if value is None else str(value) if isinstance(value, dict) else value)
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf)
    writer.writerow(HEADERS)
    for row in rows:
        writer.writerow(csv_row(_cells(row)))
    return buf.getvalue()


def to_xlsx(rows: list[dict[str, Any]], *, title: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(xlsx_row(HEADERS))
    for row in rows:
        sheet.append(xlsx_row(_cells(row)))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
