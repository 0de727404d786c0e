"""The finance API of reconciliation through the Flask test client, both backends: the
suspense pool, resolve, maker–checker, history, roles and neutralised exports."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from api.audit.models import AuditEvent
from api.auth.models import StaffAccount
from api.auth.tokens import issue_token
from api.reconciliation.models import ReconciliationItem, ReconciliationRun

BASE = "/api/v1/finance/reconciliation"
DAY = date(2026, 12, 4)
NOW = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)


def _staff(app: Flask, session: Any, role: str, name: str) -> tuple[int, dict[str, str]]:
    staff = StaffAccount(username=name, display_name=name, password_hash="x", role=role)
    session.add(staff)
    session.flush()
    token = issue_token(
        secret_key=app.config["SETTINGS"].SECRET_KEY, kind="staff", account_id=staff.id
    )
    return staff.id, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def pool(app: Flask, session: Any) -> dict[str, int]:
    run = ReconciliationRun(
        channel="wechat", bill_date=DAY, status="completed", source="channel",
        bill_raw=b"x", bill_sha256="0" * 64, bill_size=1, fetched_at=NOW, bill_rows=3,
        counts={"matched": 1, "unknown_trade": 1, "amount_mismatch": 1}, runs=1,
    )  # fmt: skip
    session.add(run)
    session.flush()
    ids = {}
    for key, type_, fen in (
        ('=HYPERLINK("x")', "unknown_trade", 12300),
        ("SSI1", "amount_mismatch", 28100),
    ):
        item = ReconciliationItem(
            run_id=run.id, channel="wechat", bill_date=DAY, side="payment", key=key,
            type=type_, out_trade_no=key, bill_amount_fen=fen, our_amount_fen=28000,
            status="open", created_at=NOW, updated_at=NOW,
        )  # fmt: skip
        session.add(item)
        session.flush()
        ids[type_] = item.id
    ids["run"] = run.id
    session.commit()
    return ids


def test_pool_resolve_and_maker_checker(
    app: Flask, client: FlaskClient, session: Any, pool: dict[str, int]
) -> None:
    _, maker = _staff(app, session, "finance", "maker")
    _, checker = _staff(app, session, "finance", "checker")
    _, auditor = _staff(app, session, "auditor", "auditor")
    session.commit()

    listed = client.get(f"{BASE}/items?status=open&channel=wechat&date={DAY}", headers=auditor)
    assert listed.status_code == 200, listed.json
    assert {i["type"] for i in listed.json} == {"unknown_trade", "amount_mismatch"}
    only = client.get(f"{BASE}/items?type=unknown_trade", headers=maker).json
    assert [i["id"] for i in only] == [pool["unknown_trade"]]
    bad = client.get(f"{BASE}/items?type=nonsense", headers=maker)
    assert bad.status_code == 422 and "code" in bad.json

    # The auditor reads but cannot act.
    refused = client.post(f"{BASE}/items/{pool['amount_mismatch']}/resolve", headers=auditor,
                          json={"action": "matched_manually", "reason": "x"})  # fmt: skip
    assert refused.status_code == 403

    # A non-money action resolves at once.
    done = client.post(f"{BASE}/items/{pool['amount_mismatch']}/resolve", headers=maker,
                       json={"action": "matched_manually", "reason": "渠道账单更正"})  # fmt: skip
    assert done.status_code == 200, done.json
    assert (done.json["status"], done.json["resolution"]) == ("resolved", "matched_manually")
    again = client.post(f"{BASE}/items/{pool['amount_mismatch']}/resolve", headers=maker,
                        json={"action": "write_off", "reason": "x"})  # fmt: skip
    assert (again.status_code, again.json["code"]) == (409, "item_not_open")

    # Money moves only with a second finance user's approval.
    item = pool["unknown_trade"]
    client.post(f"{BASE}/items/{item}/assign", headers=maker, json={"assignee": "checker"})
    client.post(f"{BASE}/items/{item}/comment", headers=maker, json={"comment": "查无此单"})
    proposed = client.post(f"{BASE}/items/{item}/resolve", headers=maker,
                           json={"action": "refund", "reason": "不明来款原路退回"})  # fmt: skip
    assert proposed.json["status"] == "pending_approval"
    own = client.post(f"{BASE}/items/{item}/approve", headers=maker, json={})
    assert (own.status_code, own.json["code"]) == (403, "maker_checker")
    assert client.get(f"{BASE}/items/{item}", headers=maker).json["status"] == "pending_approval"
    approved = client.post(f"{BASE}/items/{item}/approve", headers=checker, json={"note": "同意"})
    assert approved.status_code == 200, approved.json
    # The approval decided a stray refund in its own transaction; the channel (not running
    # here) will be asked by the worker, so the item waits for it.
    assert (approved.json["status"], approved.json["resolution"]) == ("refund_pending", "refund")
    assert approved.json["maker"] != approved.json["checker"]
    assert approved.json["refund_out_refund_no"].startswith("SSR")
    assert approved.json["refund_amount_fen"] == 12300

    detail = client.get(f"{BASE}/items/{item}", headers=auditor).json
    assert [h["action"] for h in detail["history"]] == [
        "assign", "comment", "resolve:refund", "approve", "refund_requested",
    ]  # fmt: skip
    assert detail["history"][-1]["to_status"] == "refund_pending"
    actions = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.subject == f"reconciliation_item:{item}")
        .order_by(AuditEvent.id)
    ).all()
    assert list(actions) == [
        "reconciliation.item.assign", "reconciliation.item.comment",
        "reconciliation.item.resolve", "reconciliation.item.approve",  # the maker's, refused
        "reconciliation.item.approve",
    ]  # fmt: skip
    refused = session.scalars(
        select(AuditEvent.detail)
        .where(AuditEvent.subject == f"reconciliation_item:{item}")
        .order_by(AuditEvent.id)
    ).all()[3]
    assert refused["outcome"] == "refused_maker_checker"


def test_runs_and_neutralised_exports(
    app: Flask, client: FlaskClient, session: Any, pool: dict[str, int]
) -> None:
    _, auditor = _staff(app, session, "auditor", "auditor2")
    _, resident_like = _staff(app, session, "department", "dept")
    session.commit()
    runs = client.get(f"{BASE}/runs", headers=auditor)
    assert runs.status_code == 200 and runs.json[0]["counts"]["unknown_trade"] == 1
    assert client.get(f"{BASE}/runs", headers=resident_like).status_code == 403
    one = client.get(f"{BASE}/runs/{pool['run']}", headers=auditor).json
    assert (one["bill_size"], one["bill_date"]) == (1, DAY.isoformat())
    assert client.get(f"{BASE}/runs/999999", headers=auditor).status_code == 404

    csv_body = client.get(f"{BASE}/runs/{pool['run']}/export?format=csv", headers=auditor)
    assert csv_body.status_code == 200
    text = csv_body.data.decode("utf-8-sig")
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text
    assert "123.00" in text

    from openpyxl import load_workbook

    xlsx = client.get(f"{BASE}/runs/{pool['run']}/export?format=xlsx", headers=auditor)
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    assert sheet is not None
    cells = [c.value for row in sheet.iter_rows(min_row=2) for c in row]
    assert '\'=HYPERLINK("x")' in cells
    assert not any(isinstance(c, str) and c.startswith("=") for c in cells)


def test_items_and_runs_page_by_cursor_without_repeats(
    app: Flask, client: FlaskClient, session: Any, pool: dict[str, int]
) -> None:
    """A page of one item, then the next by cursor: each item once, an item added while paging
    never shows up in the middle, and offset paging is refused."""
    _, auditor = _staff(app, session, "auditor", "pager")
    session.commit()
    first = client.get(f"{BASE}/items?limit=1", headers=auditor)
    assert first.status_code == 200, first.json
    assert [i["id"] for i in first.json] == [pool["amount_mismatch"]]  # newest first
    cursor = first.headers["X-Next-Cursor"]
    late = ReconciliationItem(
        run_id=pool["run"], channel="wechat", bill_date=DAY, side="payment", key="SSI2",
        type="missing_channel", out_trade_no="SSI2", our_amount_fen=100, status="open",
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    session.add(late)
    session.commit()
    second = client.get(f"{BASE}/items?limit=1&cursor={cursor}", headers=auditor)
    assert [i["id"] for i in second.json] == [pool["unknown_trade"]]
    assert "X-Next-Cursor" not in second.headers  # the last page
    oldest_first = client.get(f"{BASE}/items?order=asc&limit=500", headers=auditor).json
    assert [i["id"] for i in oldest_first] == [
        pool["unknown_trade"],
        pool["amount_mismatch"],
        late.id,
    ]
    runs = client.get(f"{BASE}/runs?limit=1", headers=auditor)
    assert [r["id"] for r in runs.json] == [pool["run"]] and "X-Next-Cursor" not in runs.headers
    for query in ("items?page=2&page_size=1", "runs?page=1", "items?cursor=abc", "runs?limit=0"):
        refused = client.get(f"{BASE}/{query}", headers=auditor)
        assert refused.status_code == 422 and refused.json["code"], query
