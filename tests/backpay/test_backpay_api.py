"""Back-payment approvals 补缴核定: who may approve what, validation, withdrawal, audit, and
what the resident's premiums page and a new order see of them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from api.audit.models import AuditEvent
from api.auth.models import StaffAccount
from api.backpay import service as backpay
from api.backpay.models import BackpayApproval
from api.db import get_session
from tests.households.household_factories import bearer
from tests.payments.factories import Member, make_account, make_household, token_for

ADULT = date(1965, 4, 1)


def _staff(session: Any, role: str) -> int:
    staff = StaffAccount(
        username=f"{role}-{id(session)}-{role}", display_name=role, password_hash="x", role=role
    )
    session.add(staff)
    session.flush()
    return staff.id


def _setup(app: Flask) -> dict[str, Any]:
    app.config["APP_TODAY"] = "2019-11-05"
    with app.app_context():
        session = get_session()
        household = make_household(session, [Member(ADULT), Member(date(1968, 2, 2))])
        account = make_account(session, household)
        ids = {
            "hr": _staff(session, "hr_bureau"),
            "medical": _staff(session, "medical_bureau"),
            "finance": _staff(session, "finance"),
        }
        session.commit()
        return {
            "household": household.id,
            "person": household.members[0].id,
            "resident": {"Authorization": f"Bearer {token_for(app, account)}"},
            **{k: bearer(app, v, kind="staff") for k, v in ids.items()},
        }


def _approve(app: Flask, s: dict[str, Any], who: str = "hr", **body: Any) -> Any:
    payload = {
        "person_id": s["person"],
        "insurance": "pension",
        "pension_tier": 500,
        "years": [{"year": 2017, "amount_fen": 50000}, {"year": 2018, "amount_fen": 60000}],
        "document_no": "山人社补〔2019〕12号",
        "expires_on": "2019-12-31",
        **body,
    }
    return app.test_client().post("/api/v1/backpay/approvals", json=payload, headers=s[who])


def _premiums(app: Flask, s: dict[str, Any]) -> dict[str, Any]:
    r = app.test_client().get(
        f"/api/v1/households/{s['household']}/premiums?year=2020", headers=s["resident"]
    )
    assert r.status_code == 200, r.get_json()
    body: dict[str, Any] = r.get_json()
    return body


def test_the_hr_bureau_approves_pension_per_year_audited(app: Flask) -> None:
    s = _setup(app)
    r = _approve(app, s)
    assert r.status_code == 201, r.get_json()
    approvals = r.get_json()["approvals"]
    assert [(a["year"], a["amount_fen"], a["status"]) for a in approvals] == [
        (2017, 50000, "approved"),
        (2018, 60000, "approved"),
    ]
    assert {a["bureau"] for a in approvals} == {"hr_bureau"}
    with app.app_context():
        events = (
            get_session()
            .scalars(select(AuditEvent).where(AuditEvent.action == "backpay.approved"))
            .all()
        )
        assert sorted(e.detail["year"] for e in events) == [2017, 2018]
        assert all(e.detail["document_no"] == "山人社补〔2019〕12号" for e in events)
    # The resident sees both, with the approved amounts, outside the year's unpaid total.
    page = _premiums(app, s)
    assert [(b["year"], b["amount_fen"], b["insurance"]) for b in page["backpay"]] == [
        (2017, 50000, "pension"),
        (2018, 60000, "pension"),
    ]
    assert page["totals"]["backpay_unpaid_fen"] == 110000


def test_a_bureau_may_approve_only_its_own_insurance(app: Flask) -> None:
    s = _setup(app)
    wrong = _approve(app, s, who="medical")  # pension by the medical bureau
    assert (wrong.status_code, wrong.get_json()["code"]) == (403, "wrong_bureau")
    wrong = _approve(app, s, insurance="medical", pension_tier=None)  # medical by HR
    assert (wrong.status_code, wrong.get_json()["code"]) == (403, "wrong_bureau")
    other_role = _approve(app, s, who="finance")
    assert other_role.status_code == 403
    medical = _approve(app, s, who="medical", insurance="medical", pension_tier=None)
    assert medical.status_code == 201, medical.get_json()
    with app.app_context():
        assert (
            get_session().scalar(
                select(BackpayApproval.id).where(BackpayApproval.insurance == "pension")
            )
            is None
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"years": [{"year": 2020, "amount_fen": 100}]}, "years.0"),  # not a past year
        ({"years": [{"year": 2018, "amount_fen": 0}]}, "years.0"),
        ({"years": [{"year": 2018, "amount_fen": 1}, {"year": 2018, "amount_fen": 1}]}, "years.1"),
        ({"expires_on": "2019-11-04"}, "expires_on"),
        ({"pension_tier": None}, "pension_tier"),
        ({"document_no": "  "}, "document_no"),
    ],
)
def test_bad_approvals_are_refused_with_the_field(
    app: Flask, body: dict[str, Any], field: str
) -> None:
    s = _setup(app)
    r = _approve(app, s, **body)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["errors"]["json"]
    with app.app_context():
        assert get_session().scalar(select(BackpayApproval.id)) is None


def test_one_live_approval_per_person_insurance_year(app: Flask) -> None:
    s = _setup(app)
    assert _approve(app, s).status_code == 201
    again = _approve(app, s, years=[{"year": 2018, "amount_fen": 1000}])
    assert (again.status_code, again.get_json()["code"]) == (409, "backpay_exists")


def test_withdrawal_needs_a_reason_is_audited_and_hides_the_item(app: Flask) -> None:
    s = _setup(app)
    first = _approve(app, s).get_json()["approvals"][0]
    client = app.test_client()
    url = f"/api/v1/backpay/approvals/{first['id']}/withdraw"
    assert client.post(url, json={"reason": "核定有误"}, headers=s["medical"]).status_code == 403
    r = client.post(url, json={"reason": "核定有误"}, headers=s["hr"])
    assert r.status_code == 200 and r.get_json()["status"] == "withdrawn"
    again = client.post(url, json={"reason": "再次"}, headers=s["hr"])
    assert (again.status_code, again.get_json()["code"]) == (409, "backpay_withdrawn")
    with app.app_context():
        event = get_session().scalar(
            select(AuditEvent).where(AuditEvent.action == "backpay.withdrawn")
        )
        assert event is not None and event.detail["reason"] == "核定有误"
    assert [b["year"] for b in _premiums(app, s)["backpay"]] == [2018]
    # Withdrawn, it may be approved afresh (the live-approval index excludes it).
    assert _approve(app, s, years=[{"year": 2017, "amount_fen": 45000}]).status_code == 201


def test_a_withdrawn_approval_cannot_be_ordered(app: Flask) -> None:
    s = _setup(app)
    only = _approve(app, s, years=[{"year": 2018, "amount_fen": 60000}]).get_json()["approvals"]
    client = app.test_client()
    client.post(
        f"/api/v1/backpay/approvals/{only[0]['id']}/withdraw",
        json={"reason": "撤销"},
        headers=s["hr"],
    )
    r = client.post(
        "/api/v1/payments",
        json={
            "household_id": s["household"],
            "year": 2020,
            "channel": "wechat",
            "insurances": ["backpay"],
        },
        headers={**s["resident"], "Idempotency-Key": "bp-withdrawn"},
    )
    assert (r.status_code, r.get_json()["code"]) == (409, "nothing_owed")


def test_an_expired_approval_is_neither_shown_nor_payable(app: Flask) -> None:
    s = _setup(app)
    assert _approve(app, s, expires_on="2019-11-05").status_code == 201
    assert len(_premiums(app, s)["backpay"]) == 2  # the last day still counts
    app.config["APP_TODAY"] = "2019-11-06"
    assert _premiums(app, s)["backpay"] == []
    with app.app_context():
        session = get_session()
        assert backpay.payable(session, person_ids=[s["person"]], on=date(2019, 11, 6)) == []


def test_an_approval_is_claimed_once(app: Flask) -> None:
    s = _setup(app)
    ids = [a["id"] for a in _approve(app, s).get_json()["approvals"]]
    with app.app_context():
        session = get_session()
        from tests.payments.factories import make_order

        household = make_household(session, [Member(ADULT)])
        order = make_order(session, household)
        on = date(2019, 11, 5)
        assert backpay.claim(session, approval_ids=ids, order_id=order.id, on=on) == set(ids)
        assert backpay.claim(session, approval_ids=ids, order_id=order.id, on=on) == set()
