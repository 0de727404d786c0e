"""The payments API without a gateway: access rules, input refusals, the finance callback log."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from api.auth.models import StaffAccount
from api.auth.tokens import issue_token
from tests.payments.factories import Member, make_account, make_household, make_order, token_for
from tests.payments.gateway_messages import alipay_notification, wechat_v2_payment

WECHAT = "/api/v1/payments/notify/wechat"
ALIPAY = "/api/v1/payments/notify/alipay"


def _staff(app, session, role: str) -> dict[str, str]:
    staff = StaffAccount(
        username=f"u-{role}-{id(session)}", display_name="员工", password_hash="x", role=role
    )
    session.add(staff)
    session.flush()
    token = issue_token(
        secret_key=app.config["SETTINGS"].SECRET_KEY, kind="staff", account_id=staff.id
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def family(session):
    return make_household(session, [Member(date(1975, 3, 9)), Member(date(1980, 1, 1))])


def test_an_order_of_another_household_is_not_found(app, client, session, family) -> None:
    order = make_order(session, family)
    stranger = make_account(session, make_household(session, [Member(date(1990, 1, 1))]))
    headers = {"Authorization": f"Bearer {token_for(app, stranger)}"}
    r = client.get(f"/api/v1/payments/{order.out_trade_no}", headers=headers)
    assert (r.status_code, r.json["code"]) == (404, "order_not_found")
    member = make_account(session, family)
    r = client.get(
        f"/api/v1/payments/{order.out_trade_no}",
        headers={"Authorization": f"Bearer {token_for(app, member)}"},
    )
    assert r.status_code == 200
    me, other = family.members  # the account is bound through the first member
    by_person = {i["person_id"]: i for i in r.json["items"]}
    assert by_person[me.id]["name"] == "王小明" and by_person[me.id]["is_self"]
    assert by_person[other.id]["name"] == "王*明" and not by_person[other.id]["is_self"]
    assert client.get(f"/api/v1/payments/{order.out_trade_no}").status_code == 401


def test_order_items_show_the_payer_in_full_and_tell_masked_namesakes_apart(
    app, client, session
) -> None:
    """Issue 10, defect 10: the payer's own name was masked in the order items while the
    premiums page showed it, and two members masked alike (刘*) could not be told apart."""
    family = make_household(
        session,
        [
            Member(date(1975, 3, 9), name="刘强"),
            Member(date(1948, 5, 1), name="刘刚"),
            Member(date(2010, 7, 7), name="刘洋"),
        ],
    )
    account = make_account(session, family)
    order = make_order(session, family)
    headers = {"Authorization": f"Bearer {token_for(app, account)}"}

    items = client.get(f"/api/v1/payments/{order.out_trade_no}", headers=headers).json["items"]
    page = client.get(f"/api/v1/households/{family.id}/premiums?year=2020", headers=headers)

    shown = {(i["name"], i["birth_year"], i["is_self"]) for i in items}
    assert shown == {("刘强", 1975, True), ("刘*", 1948, False), ("刘*", 2010, False)}
    members = {(m["name"], m["birth_year"], m["is_self"]) for m in page.json["members"]}
    assert members == shown  # the same names, as the premiums page shows them


def test_order_input_is_checked_before_anything_happens(app, client, session, family) -> None:
    account = make_account(session, family)
    headers = {"Authorization": f"Bearer {token_for(app, account)}", "Idempotency-Key": "k"}
    body = {"household_id": family.id, "year": 2020, "channel": "wechat", "insurances": ["x"]}
    r = client.post("/api/v1/payments", json=body, headers=headers)
    assert r.status_code == 422 and "insurances" in r.json["errors"]["json"]
    body["insurances"] = ["medical"]
    body["amount_fen"] = 1  # the client never sends an amount
    r = client.post("/api/v1/payments", json=body, headers=headers)
    assert r.status_code == 422 and "amount_fen" in r.json["errors"]["json"]
    del body["amount_fen"]
    body["channel"] = "alipay"  # a WeChat login pays with WeChat Pay only
    r = client.post("/api/v1/payments", json=body, headers=headers)
    assert (r.status_code, r.json["code"]) == (422, "channel_not_allowed")
    other = make_household(session, [Member(date(1990, 1, 1))])
    body.update(channel="wechat", household_id=other.id)
    r = client.post("/api/v1/payments", json=body, headers={**headers, "Idempotency-Key": "k2"})
    assert (r.status_code, r.json["code"]) == (404, "household_not_found")


def test_finance_callback_log_filters_pages_and_csv(app, client, session, family) -> None:
    settings = app.config["SETTINGS"]
    paid = make_order(session, family)
    client.post(
        WECHAT,
        data=wechat_v2_payment(
            settings, out_trade_no=paid.out_trade_no, amount_fen=paid.amount_fen
        ),
        content_type="text/xml",
    )
    client.post(
        WECHAT,
        data=wechat_v2_payment(
            settings, out_trade_no=paid.out_trade_no, amount_fen=paid.amount_fen
        ),
        content_type="text/xml",
    )
    other = make_household(session, [Member(date(1990, 1, 1))])
    alipay_order = make_order(session, other, channel="alipay")
    client.post(
        ALIPAY,
        data=alipay_notification(
            settings,
            out_trade_no=alipay_order.out_trade_no,
            amount_fen=alipay_order.amount_fen + 1,
        ),
        content_type="application/x-www-form-urlencoded",
    )
    client.post(WECHAT, data=b"=SUM(A1)<xml>", content_type="text/xml")
    finance = _staff(app, session, "finance")

    r = client.get("/api/v1/finance/notifications", headers=finance)
    assert r.status_code == 200
    assert [n["outcome"] for n in r.json] == ["rejected", "rejected", "duplicate", "applied"]
    assert r.json[-1]["body"].startswith("<xml>")
    assert "X-Next-Cursor" not in r.headers  # one page holds all four

    def outcomes(query: str) -> list[tuple[str, str | None]]:
        got = client.get(f"/api/v1/finance/notifications?{query}", headers=finance)
        assert got.status_code == 200, got.json
        return [(n["outcome"], n["reason"]) for n in got.json]

    assert outcomes("channel=alipay") == [("rejected", "amount_mismatch")]
    assert outcomes("outcome=rejected&reason=malformed") == [("rejected", "malformed")]
    assert outcomes(f"out_trade_no={paid.out_trade_no}") == [
        ("duplicate", None),
        ("applied", None),
    ]
    assert outcomes("date_from=2000-01-01&date_to=2000-01-02") == []
    first = client.get("/api/v1/finance/notifications?limit=3", headers=finance)
    assert len(first.json) == 3
    cursor = first.headers["X-Next-Cursor"]
    assert len(outcomes(f"limit=3&cursor={cursor}")) == 1

    r = client.get("/api/v1/finance/notifications?format=csv&channel=wechat", headers=finance)
    assert r.status_code == 200 and r.content_type.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert [row["outcome"] for row in rows] == ["rejected", "duplicate", "applied"]
    assert rows[0]["body"].startswith("'=SUM")  # no formula injection into Excel

    auditor = _staff(app, session, "auditor")
    assert client.get("/api/v1/finance/notifications", headers=auditor).status_code == 200
    agent = _staff(app, session, "agent")
    session.commit()  # a 403 is audited after rolling back the request's session: keep the staff
    assert client.get("/api/v1/finance/notifications", headers=agent).status_code == 403
    r = client.post(
        "/api/v1/finance/refunds",
        json={"out_trade_no": paid.out_trade_no, "items": [], "reason": "other"},
        headers=auditor,
    )
    assert r.status_code == 403  # auditors read, never act
    r = client.get("/api/v1/finance/notifications?outcome=bogus", headers=finance)
    assert r.status_code == 422
