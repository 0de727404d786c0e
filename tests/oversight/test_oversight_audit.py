"""The auditor's view: a forged notification, an out-of-scope access refusal, a reconciliation
discrepancy and staff actions, each found with its filters; keyset pages; neutralised exports;
read-only (the auditor cannot write, and that refusal is itself on record)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook

from api.audit.service import record
from api.reconciliation.models import ReconciliationItem, ReconciliationRun
from tests.payments.gateway_messages import wechat_v2_payment

URL = "/api/v1/oversight/audit"
NOW = datetime(2019, 11, 6, 2, 0, tzinfo=UTC)


def _discrepancy(session: Any) -> int:
    run = ReconciliationRun(
        channel="wechat", bill_date=date(2019, 11, 5), status="completed", source="channel",
        bill_raw=b"x", bill_sha256="0" * 64, bill_size=1, fetched_at=NOW, bill_rows=1,
        counts={"amount_mismatch": 1}, runs=1,
    )  # fmt: skip
    session.add(run)
    session.flush()
    item = ReconciliationItem(
        run_id=run.id, channel="wechat", bill_date=date(2019, 11, 5), side="payment",
        key="=SSI1", type="amount_mismatch", out_trade_no="=SSI1", bill_amount_fen=28100,
        our_amount_fen=26000, status="open", created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    session.add(item)
    session.commit()
    return item.id


def _items(client: FlaskClient, district: Any, query: str) -> list[dict[str, Any]]:
    r = client.get(f"{URL}?{query}", headers=district.headers["auditor"])
    assert r.status_code == 200, r.json
    return r.json["items"]


def test_forged_notification_is_a_refusal(
    app: Flask, client: FlaskClient, session: Any, district: Any
) -> None:
    forged = wechat_v2_payment(
        app.config["SETTINGS"], out_trade_no="SSI20191105FORGED0000000001", amount_fen=26000,
        key="WRONGKEYWRONGKEYWRONGKEYWRONGKEY",
    )  # fmt: skip
    r = client.post("/api/v1/payments/notify/wechat", data=forged, content_type="text/xml")
    assert b"FAIL" in r.data
    (item,) = _items(client, district, "kind=notification")
    assert (item["outcome"], item["reason"]) == ("rejected", "bad_signature")
    assert item["detail"]["signature_valid"] is False
    assert item["actor"] == "gateway:wechat"
    assert "body" not in item and "raw_body" not in str(item)


def test_out_of_scope_access_is_recorded(client: FlaskClient, district: Any) -> None:
    town = district.headers["town"]
    r = client.get("/api/v1/oversight/progress?town=370406102", headers=town)
    assert r.status_code == 403
    r = client.get("/api/v1/finance/reconciliation/items", headers=town)
    assert r.status_code == 403  # a role not allowed on the endpoint
    items = _items(client, district, "kind=refusal&action=access_refused")
    actor = f"staff:{district.staff_ids['town']}"
    assert [(i["actor"], i["reason"]) for i in items] == [
        (actor, "forbidden"),
        (actor, "out_of_scope"),
    ]
    assert items[1]["subject"] == "GET /api/v1/oversight/progress"
    assert "370406102" not in str(items)  # no query string kept
    # town filter: the events of that town's office and agents
    assert len(_items(client, district, "kind=refusal&town=370406101")) == 2
    assert _items(client, district, "kind=refusal&town=370406102") == []
    assert len(_items(client, district, f"kind=refusal&actor={actor}")) == 2


def test_discrepancy_and_staff_action(client: FlaskClient, session: Any, district: Any) -> None:
    item_id = _discrepancy(session)
    record(session, actor="staff:1", action="roster_import", subject="file:x.csv")
    session.commit()
    (d,) = _items(client, district, "kind=discrepancy")
    assert (d["id"], d["reason"], d["amount_fen"]) == (item_id, "amount_mismatch", 28100)
    assert d["detail"]["our_amount_fen"] == 26000
    assert _items(client, district, "kind=discrepancy&date_from=2019-11-06") == []
    assert len(_items(client, district, "kind=discrepancy&date_to=2019-11-05")) == 1
    actions = _items(client, district, "kind=action")
    assert [a["action"] for a in actions] == ["roster_import"]


def test_pages_by_cursor_and_filters_are_checked(
    client: FlaskClient, session: Any, district: Any
) -> None:
    for n in range(5):
        record(session, actor="system", action=f"step{n}")
    session.commit()
    h = district.headers["auditor"]
    seen, cursor = [], None
    while True:
        query = "kind=action&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(f"{URL}?{query}", headers=h).json
        seen += [i["action"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [f"step{n}" for n in range(4, -1, -1)]
    for query in (
        "kind=everything",
        "date_from=2019-11-05&date_to=2019-11-01",
        "date_from=someday",
        "cursor=abc",
        "page=2",
    ):
        r = client.get(f"{URL}?{query}", headers=h)
        assert r.status_code == 422, query
        assert r.json["code"]
    r = client.get(f"{URL}?kind=notification&town=370406101", headers=h)
    assert r.status_code == 422 and r.json["code"] == "filter_not_applicable"


def test_exports_are_neutralised(client: FlaskClient, session: Any, district: Any) -> None:
    _discrepancy(session)
    h = district.headers["auditor"]
    r = client.get(f"{URL}?kind=discrepancy&format=csv", headers=h)
    assert r.status_code == 200 and r.content_type.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "类别"
    assert rows[1][5] == "'order:=SSI1" or rows[1][5] == "order:=SSI1"
    r = client.get(f"{URL}?kind=discrepancy&format=xlsx", headers=h)
    sheet = load_workbook(io.BytesIO(r.data)).active
    values = [c for row in sheet.iter_rows(values_only=True) for c in row]
    assert not any(isinstance(v, str) and v.startswith(("=", "+", "-", "@")) for v in values)


def test_auditor_cannot_write_and_others_cannot_read(
    client: FlaskClient, session: Any, district: Any
) -> None:
    item_id = _discrepancy(session)
    auditor = district.headers["auditor"]
    r = client.post(
        f"/api/v1/finance/reconciliation/items/{item_id}/comment",
        json={"text": "看过"},
        headers=auditor,
    )
    assert r.status_code == 403
    assert client.post(URL, headers=auditor).status_code == 405
    for role in ("finance", "town", "agent"):
        assert client.get(URL, headers=district.headers[role]).status_code == 403
    refusals = _items(client, district, "kind=refusal&action=access_refused")
    assert f"staff:{district.staff_ids['auditor']}" in [i["actor"] for i in refusals]
