"""The tax endpoints: acknowledgements (role tax), monitoring and the information return."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from api.audit.models import AuditEvent
from api.auth.service import create_staff
from api.payments.outbox import enqueue_contribution_event
from api.payments.outbox.models import OutboxMessage, TaxAcknowledgement
from tests.outbox.conftest import make_event


def _token(client: FlaskClient, session: Any, role: str) -> dict[str, str]:
    create_staff(session, username=f"u-{role}", role=role, password="pw-123456")
    session.commit()
    response = client.post(
        "/api/v1/auth/staff", json={"username": f"u-{role}", "password": "pw-123456"}
    )
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def _sent(session: Any, contribution_id: int, *, minutes_ago: int = 0, **kw: Any) -> OutboxMessage:
    message = enqueue_contribution_event(session, make_event(contribution_id, **kw))
    message.status = "sent"
    message.sent_at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    message.deliveries = 1
    session.flush()
    return message


def test_acknowledgements_from_the_tax_role(app: Flask, client: FlaskClient, session: Any) -> None:
    booked = _sent(session, 1)
    rejected = _sent(session, 2)
    headers = _token(client, session, "tax")
    body = {
        "acknowledgements": [
            {"record_id": booked.id, "status": "booked", "tax_ref": "TAX-1"},
            {"record_id": rejected.id, "status": "rejected", "reason": "未关联"},
            {"record_id": "no-such-record", "status": "booked"},
        ]
    }

    response = client.post("/api/v1/tax/acknowledgements", json=body, headers=headers)
    again = client.post("/api/v1/tax/acknowledgements", json=body, headers=headers)

    assert response.status_code == 200, response.json
    assert [r["outcome"] for r in response.json["results"]] == [
        "acknowledged",
        "retry_scheduled",
        "unknown_record",
    ]
    assert again.json["results"][0]["outcome"] == "already_acknowledged"
    session.expire_all()
    assert booked.ack_status == "booked" and booked.acknowledged_at is not None
    assert booked.ack_detail == "TAX-1"
    assert rejected.status == "pending" and rejected.attempts == 2
    assert "未关联" in (rejected.last_error or "")
    log = session.scalars(select(TaxAcknowledgement)).all()
    assert len(log) == 4 and {a.received_from for a in log} == {"staff:u-tax"}


def test_acknowledgements_need_the_tax_role_and_a_clean_body(
    app: Flask, client: FlaskClient, session: Any
) -> None:
    message = _sent(session, 1)
    finance = _token(client, session, "finance")
    tax = _token(client, session, "tax")
    ack = {"record_id": message.id, "status": "booked"}

    anonymous = client.post("/api/v1/tax/acknowledgements", json={"acknowledgements": [ack]})
    assert anonymous.status_code == 401
    forbidden = client.post(
        "/api/v1/tax/acknowledgements", json={"acknowledgements": [ack]}, headers=finance
    )
    assert forbidden.status_code == 403
    bad = client.post(
        "/api/v1/tax/acknowledgements",
        json={"acknowledgements": [{**ack, "status": "maybe", "amount_fen": 1}]},
        headers=tax,
    )
    assert bad.status_code == 422 and bad.json["code"] == "validation_error"
    session.expire_all()
    assert message.acknowledged_at is None


def test_records_lists_unacknowledged_past_a_threshold_and_dead(
    app: Flask, client: FlaskClient, session: Any
) -> None:
    old = _sent(session, 1, minutes_ago=45)
    _sent(session, 2, minutes_ago=5)  # too recent to worry about
    acked = _sent(session, 3, minutes_ago=60)
    acked.acknowledged_at, acked.ack_status = datetime.now(UTC), "booked"
    dead = enqueue_contribution_event(session, make_event(4))
    dead.status, dead.dead_at, dead.attempts, dead.last_error = "dead", datetime.now(UTC), 5, "x"
    session.flush()
    auditor = _token(client, session, "auditor")

    stuck = client.get(
        "/api/v1/tax/records?status=unacknowledged&older_than_minutes=30", headers=auditor
    )
    dead_list = client.get("/api/v1/tax/records?status=dead", headers=auditor)
    by_contribution = client.get("/api/v1/tax/records?contribution_id=3", headers=auditor)
    summary = client.get("/api/v1/tax/summary", headers=auditor)

    assert stuck.status_code == 200
    assert stuck.json["total"] == 1 and stuck.json["items"][0]["id"] == old.id
    assert "id_number" not in stuck.json["items"][0]  # monitoring needs no ID numbers
    assert [i["id"] for i in dead_list.json["items"]] == [dead.id]
    assert dead_list.json["items"][0]["attempts"] == 5
    assert by_contribution.json["items"][0]["ack_status"] == "booked"
    assert summary.json == {"pending": 0, "sent": 3, "dead": 1, "unacknowledged": 2}
    assert client.get("/api/v1/tax/records?status=lost", headers=auditor).status_code == 422


def test_export_endpoint_returns_the_information_return(
    app: Flask, client: FlaskClient, session: Any
) -> None:
    message = _sent(session, 1)
    message.acknowledged_at = message.first_acknowledged_at = datetime.now(UTC)
    _sent(session, 2)  # sent, not acknowledged: not in the return
    session.flush()
    finance = _token(client, session, "finance")

    response = client.get(
        "/api/v1/tax/export?insurance=medical&from=2019-11-01&to=2019-11-30", headers=finance
    )
    backwards = client.get(
        "/api/v1/tax/export?insurance=medical&from=2019-11-30&to=2019-11-01", headers=finance
    )

    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0][7] == "公民身份号码" and len(rows) == 2
    assert rows[1][0] == message.id and rows[1][7] == "37040619900100001X"
    assert backwards.status_code == 422
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "tax.export")).one()
    assert audit.actor == "staff:u-finance" and audit.detail["rows"] == 1


def test_export_endpoint_neutralises_formula_like_names(
    app: Flask, client: FlaskClient, session: Any
) -> None:
    """Issue 10, defect 6, through the API: CSV and XLSX hold text, never a formula."""
    message = _sent(session, 1, name='=HYPERLINK("http://evil.example","点我")')
    message.acknowledged_at = message.first_acknowledged_at = datetime.now(UTC)
    session.flush()
    finance = _token(client, session, "finance")
    query = "/api/v1/tax/export?insurance=medical&from=2019-11-01&to=2019-11-30"

    as_csv = client.get(query, headers=finance)
    as_xlsx = client.get(query + "&format=xlsx", headers=finance)

    rows = list(csv.reader(io.StringIO(as_csv.data.decode("utf-8-sig"))))
    assert rows[1][8] == '\'=HYPERLINK("http://evil.example","点我")'
    assert as_xlsx.status_code == 200, as_xlsx.data[:200]
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(as_xlsx.data)).active
    assert sheet is not None
    assert sheet["I2"].data_type == "s" and str(sheet["I2"].value).startswith("'=")
