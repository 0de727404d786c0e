"""When `refund` is refused, and that approvals decide exactly one refund: both backends, and a
real race on PostgreSQL (several checkers approving the same item at once over HTTP)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from api.audit.models import AuditEvent
from api.payments.models import Refund, StrayRefund
from api.reconciliation.models import (
    ReconciliationItem,
    ReconciliationItemEvent,
    ReconciliationRun,
)
from tests.payments.conftest import LiveServer
from tests.payments.test_payments_flows import _staff_token
from tests.reconciliation.test_finance_api import _staff

BASE = "/api/v1/finance/reconciliation"
DAY = date(2026, 12, 4)
NOW = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)

# (key, type, side, bill fen, our fen, bill status): none of them may be refunded.
NOT_APPLICABLE = [
    ("LESS", "amount_mismatch", "payment", 27900, 28000, "SUCCESS"),  # the channel took less
    ("NOORDER", "amount_mismatch", "payment", 28100, 28000, "SUCCESS"),  # no such order of ours
    ("SHORT", "missing_channel", "payment", None, 28000, None),
    ("NOTOURS", "missing_ours", "payment", 28000, 28000, "SUCCESS"),  # not paid in our books
    ("REVOKED", "status_mismatch", "payment", 28000, 28000, "REVOKED"),  # the bill: not paid
    ("ZERO", "unknown_trade", "payment", 0, None, "SUCCESS"),
    ("EXTR#refund", "unknown_trade", "refund", 500, None, "REFUND"),
    ("SSRX", "refund_missing_ours", "refund", 500, None, "REFUND"),
    ("SSRY", "refund_amount_mismatch", "refund", 600, 500, "REFUND"),
]


def _pool(session: Any, rows: list[tuple[str, str, str, int | None, int | None, str | None]]
          ) -> dict[str, int]:  # fmt: skip
    run = ReconciliationRun(
        channel="wechat", bill_date=DAY, status="completed", source="channel",
        bill_raw=b"x", bill_sha256="0" * 64, bill_size=1, fetched_at=NOW, bill_rows=1,
        counts={}, runs=1,
    )  # fmt: skip
    session.add(run)
    session.flush()
    ids = {}
    for key, type_, side, bill, ours, status in rows:
        item = ReconciliationItem(
            run_id=run.id, channel="wechat", bill_date=DAY, side=side, key=key, type=type_,
            out_trade_no=key.split("#")[0], bill_amount_fen=bill, our_amount_fen=ours,
            bill_status=status, status="open", created_at=NOW, updated_at=NOW,
        )  # fmt: skip
        session.add(item)
        session.flush()
        ids[key] = item.id
    session.commit()
    return ids


def _count(session: Any, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_refund_is_refused_where_it_does_not_apply(
    app: Flask, client: FlaskClient, session: Any
) -> None:
    ids = _pool(session, NOT_APPLICABLE)
    _, maker = _staff(app, session, "finance", "maker")
    session.commit()
    for key, item_id in ids.items():
        r = client.post(f"{BASE}/items/{item_id}/resolve", headers=maker,
                        json={"action": "refund", "reason": "退回"})  # fmt: skip
        assert r.status_code == 409, (key, r.json)
        assert r.json["code"] == "refund_not_applicable", (key, r.json)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json["message"]), r.json
        item = client.get(f"{BASE}/items/{item_id}", headers=maker).json
        assert (item["status"], item["resolution"], item["maker"]) == ("open", None, None), key
        assert item["history"] == []
        # Another action still works on it (nothing was half-changed).
    assert _count(session, ReconciliationItemEvent) == 0
    assert _count(session, Refund) == 0 and _count(session, StrayRefund) == 0
    written_off = client.post(f"{BASE}/items/{ids['LESS']}/resolve", headers=maker,
                              json={"action": "write_off", "reason": "渠道少收，核销"})  # fmt: skip
    assert written_off.json["status"] == "pending_approval"


def test_write_off_moves_no_money_and_double_approval_decides_one_refund(
    app: Flask, client: FlaskClient, session: Any
) -> None:
    ids = _pool(session, [
        ("EXTSTRAY", "unknown_trade", "payment", 12300, None, "SUCCESS"),
        ("LESS2", "amount_mismatch", "payment", 27900, 28000, "SUCCESS"),
    ])  # fmt: skip
    _, maker = _staff(app, session, "finance", "maker2")
    _, checker = _staff(app, session, "finance", "checker2")
    _, other = _staff(app, session, "finance", "checker3")
    session.commit()

    off = ids["LESS2"]
    client.post(f"{BASE}/items/{off}/resolve", headers=maker,
                json={"action": "write_off", "reason": "核销"})  # fmt: skip
    done = client.post(f"{BASE}/items/{off}/approve", headers=checker, json={}).json
    assert (done["status"], done["resolution"], done["refund_out_refund_no"]) == (
        "resolved",
        "write_off",
        None,
    )
    assert _count(session, Refund) == 0 and _count(session, StrayRefund) == 0

    stray = ids["EXTSTRAY"]
    client.post(f"{BASE}/items/{stray}/resolve", headers=maker,
                json={"action": "refund", "reason": "不明来款原路退回"})  # fmt: skip
    first = client.post(f"{BASE}/items/{stray}/approve", headers=checker, json={})
    assert first.status_code == 200 and first.json["status"] == "refund_pending", first.json
    for who in (checker, other):
        again = client.post(f"{BASE}/items/{stray}/approve", headers=who, json={})
        assert (again.status_code, again.json["code"]) == (409, "nothing_to_approve")
    rows = session.scalars(select(StrayRefund)).all()
    assert [(r.out_trade_no, r.amount_fen, r.state) for r in rows] == [
        ("EXTSTRAY", 12300, "requested")  # the channel is not running here: the worker retries
    ]
    assert rows[0].out_refund_no == first.json["refund_out_refund_no"]
    audit = session.scalars(
        select(AuditEvent.detail).where(
            AuditEvent.subject == f"reconciliation_item:{stray}",
            AuditEvent.action == "reconciliation.item.approve",
        )
    ).all()
    assert [d["out_refund_no"] for d in audit] == [rows[0].out_refund_no]


def test_concurrent_approvals_decide_exactly_one_refund(pg_live_api: LiveServer) -> None:
    app = pg_live_api.app
    db = app.extensions["database"]
    with app.app_context():
        session = db.session()
        ids = _pool(session, [("EXTRACE", "unknown_trade", "payment", 4500, None, "SUCCESS")])
        db.session.remove()
    item_id = ids["EXTRACE"]
    maker = _staff_token(app)
    checkers = [_staff_token(app) for _ in range(6)]
    r = requests.post(f"{pg_live_api.url}{BASE}/items/{item_id}/resolve",
                      json={"action": "refund", "reason": "原路退回"},
                      headers={"Authorization": f"Bearer {maker}"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text

    barrier = threading.Barrier(len(checkers))
    answers: list[tuple[int, Any]] = []

    def approve(token: str) -> None:
        barrier.wait()
        reply = requests.post(f"{pg_live_api.url}{BASE}/items/{item_id}/approve", json={},
                              headers={"Authorization": f"Bearer {token}"}, timeout=60)  # fmt: skip
        answers.append((reply.status_code, reply.json()))

    threads = [threading.Thread(target=approve, args=(t,)) for t in checkers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(code for code, _ in answers)
    assert codes == [200] + [409] * (len(checkers) - 1), answers
    assert all(body["code"] == "nothing_to_approve" for code, body in answers if code == 409)
    with app.app_context():
        session = db.session()
        strays = session.scalars(select(StrayRefund)).all()
        item = session.get(ReconciliationItem, item_id)
        assert item is not None
        assert len(strays) == 1 and item.refund_out_refund_no == strays[0].out_refund_no
        db.session.remove()
