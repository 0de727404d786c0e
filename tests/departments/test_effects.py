"""What a department change does, exactly once: a person who becomes government-paid before
paying (open order closed, nothing owed), after paying (reimburse line, never a second
contribution), a death with and without payments, and a wrong government payment reversed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select

from api.departments.models import ChangeEffect
from api.households.models import Person
from api.payments import pricing
from api.payments.models import (
    Contribution,
    OrderStatus,
    PaymentOrder,
    Refund,
    RefundItem,
)
from api.payments.outbox import OutboxMessage
from tests.departments.helpers import (
    MEDICAL,
    ON_TIME,
    closing_channel,
    count,
    csv_of,
    paid_order,
    row,
    staff,
    upload_and_apply,
)
from tests.payments.factories import Member, make_account, make_household, make_order, token_for


def _family(session: Any) -> Any:
    return make_household(
        session,
        [Member(date(1970, 4, 1), name="王大明"), Member(date(1972, 5, 1), name="李秀兰")],
    )


def _dues(session: Any, household: Any) -> list[tuple[int, str]]:
    found = pricing.dues(
        session,
        household_id=household.id,
        year=2020,
        on=date.fromisoformat(ON_TIME),
        insurances=("medical",),
    )
    return [(d.person_id, d.insurance) for d in found]


def test_becomes_government_paid_before_paying_closes_the_open_order(
    app: Flask, session: Any, client: Any, monkeypatch: Any
) -> None:
    app.config["APP_TODAY"] = ON_TIME
    channel = closing_channel(monkeypatch)
    h = _family(session)
    a, b = h.members
    account = make_account(session, h)
    order = make_order(session, h, items=[(a, "medical", MEDICAL), (b, "medical", MEDICAL)])
    mz = staff(app, session, "department", "mz", "civil_affairs")
    session.commit()
    assert _dues(session, h) == [(a.id, "medical"), (b.id, "medical")]

    result = upload_and_apply(client, mz, csv_of(row(a, "dibao")))
    assert result["orders_closed"] == {"closed": 1}
    assert channel.closed == [order.out_trade_no]
    session.expire_all()
    assert session.get(PaymentOrder, order.id).status == OrderStatus.CLOSED
    # a owes nothing now; the family's next order is for b alone.
    assert _dues(session, h) == [(b.id, "medical")]
    page = client.get(
        f"/api/v1/households/{h.id}/premiums?year=2020",
        headers={"Authorization": f"Bearer {token_for(app, account)}"},
    ).get_json()
    first = page["members"][0]["medical"]
    assert first["status"] == "government" and first["owed_fen"] == 0
    assert first["government_pays_fen"] == MEDICAL and first["rule"]
    # Exactly once: the same list again closes nothing and records nothing.
    again = upload_and_apply(client, mz, csv_of(row(a, "dibao")))
    assert again["orders_closed"] == {}
    assert count(session, ChangeEffect, ChangeEffect.kind == "order_closed") == 1
    # The department's batch books a's premium (not b's).
    draft = client.get("/api/v1/departments/batch?year=2020", headers=mz).get_json()
    assert [(ln["person_id"], ln["kind"], ln["amount_fen"]) for ln in draft["lines"]] == [
        (a.id, "book", MEDICAL)
    ]


def test_after_paying_is_reimbursed_never_a_second_contribution(
    app: Flask, session: Any, client: Any
) -> None:
    app.config["APP_TODAY"] = ON_TIME
    h = _family(session)
    a, _ = h.members
    paid_order(session, h, a, "medical", MEDICAL)
    mz = staff(app, session, "department", "mz", "civil_affairs")
    fin = staff(app, session, "finance", "fin")
    session.commit()
    upload_and_apply(client, mz, csv_of(row(a, "dibao")))
    draft = client.get("/api/v1/departments/batch?year=2020", headers=mz).get_json()
    assert [
        (ln["person_id"], ln["kind"], ln["amount_fen"], ln["label"]) for ln in draft["lines"]
    ] == [(a.id, "reimburse", MEDICAL, "个人已缴，代缴资金退付个人")]
    assert draft["totals"]["reimburse"] == {"lines": 1, "amount_fen": MEDICAL}
    batch = client.post(
        "/api/v1/departments/batch/submit", json={"year": 2020}, headers=mz
    ).get_json()
    approved = client.post(f"/api/v1/departments/batches/{batch['id']}/approve", headers=fin)
    assert approved.status_code == 200, approved.get_json()
    assert [ln["outcome"] for ln in approved.get_json()["lines"]] == ["approved"]
    # a keeps the own contribution; none booked by the government.
    assert count(session, Contribution, Contribution.person_id == a.id) == 1
    assert count(session, Contribution, Contribution.source == "government") == 0
    # The next draft is empty: the reimbursement is in one batch only.
    assert client.get("/api/v1/departments/batch?year=2020", headers=mz).get_json()["lines"] == []


def test_death_without_payments_closes_orders_and_records_the_date(
    app: Flask, session: Any, client: Any, monkeypatch: Any
) -> None:
    app.config["APP_TODAY"] = ON_TIME
    closing_channel(monkeypatch)
    h = _family(session)
    a, b = h.members
    order = make_order(session, h, items=[(a, "medical", MEDICAL), (b, "medical", MEDICAL)])
    police = staff(app, session, "department", "ga", "police")
    session.commit()
    result = upload_and_apply(client, police, csv_of(row(a, "death", day="2019-10-20")))
    assert (result["events"], result["refunds"], result["orders_closed"]) == (1, 0, {"closed": 1})
    session.expire_all()
    assert session.get(Person, a.id).deceased_on == date(2019, 10, 20)
    assert session.get(PaymentOrder, order.id).status == OrderStatus.CLOSED
    assert _dues(session, h) == [(b.id, "medical")]
    again = upload_and_apply(client, police, csv_of(row(a, "death", day="2019-10-20")))
    assert (again["events"], again["orders_closed"]) == (0, {})


def test_death_with_payments_queues_the_refunds_the_rules_allow(
    app: Flask, session: Any, client: Any
) -> None:
    app.config["APP_TODAY"] = ON_TIME
    h = _family(session)
    a, b = h.members
    # a: medical paid (refunded: died before 2020-01-01) and pension paid before the death
    # (kept); b: medical paid, died during 2020 (covered until death: nothing goes back).
    medical = paid_order(session, h, a, "medical", MEDICAL)
    paid_order(session, h, a, "pension", 50000, paid_at=datetime(2019, 10, 10, 2, tzinfo=UTC))
    paid_order(session, h, b, "medical", MEDICAL)
    police = staff(app, session, "department", "ga", "police")
    session.commit()
    result = upload_and_apply(
        client,
        police,
        csv_of(row(a, "death", day="2019-10-20"), row(b, "death", day="2020-03-01")),
    )
    assert (result["events"], result["refunds"]) == (2, 1)
    refunds = session.scalars(select(Refund)).all()
    assert [(r.order_id, r.reason, r.amount_fen, r.state) for r in refunds] == [
        (medical.id, "deceased", MEDICAL, "requested")
    ]
    assert [i.person_id for i in session.scalars(select(RefundItem))] == [a.id]
    again = upload_and_apply(
        client,
        police,
        csv_of(row(a, "death", day="2019-10-20"), row(b, "death", day="2020-03-01")),
    )
    assert (again["events"], again["refunds"]) == (0, 0)
    assert count(session, Refund) == 1


def test_wrong_government_payment_is_reversed_by_finance(
    app: Flask, session: Any, client: Any
) -> None:
    app.config["APP_TODAY"] = ON_TIME
    h = _family(session)
    a, b = h.members
    mz = staff(app, session, "department", "mz", "civil_affairs")
    fin = staff(app, session, "finance", "fin")
    session.commit()
    upload_and_apply(client, mz, csv_of(row(a, "dibao"), row(b, "dibao")))
    batch = client.post("/api/v1/departments/batch/submit", json={"year": 2020}, headers=mz)
    client.post(f"/api/v1/departments/batches/{batch.get_json()['id']}/approve", headers=fin)
    booked = session.scalars(select(Contribution).where(Contribution.person_id == a.id)).one()
    assert (booked.source, booked.paying_department) == ("government", "civil_affairs")

    # a is taken off the list after booking: a reverse line in 民政's next batch, not at once.
    upload_and_apply(client, mz, csv_of(row(b, "dibao")))
    session.expire_all()
    assert session.get(Contribution, booked.id).status == "paid"
    draft = client.get("/api/v1/departments/batch?year=2020", headers=mz).get_json()
    assert [(ln["person_id"], ln["kind"], ln["contribution_id"]) for ln in draft["lines"]] == [
        (a.id, "reverse", booked.id)
    ]
    second = client.post("/api/v1/departments/batch/submit", json={"year": 2020}, headers=mz)
    done = client.post(
        f"/api/v1/departments/batches/{second.get_json()['id']}/approve", headers=fin
    )
    assert [ln["outcome"] for ln in done.get_json()["lines"]] == ["reversed"]
    session.expire_all()
    reversed_ = session.get(Contribution, booked.id)
    assert (reversed_.status, reversed_.reversal_reason) == ("reversed", "government_removed")
    records = session.scalars(
        select(OutboxMessage).where(OutboxMessage.contribution_id == booked.id)
    ).all()
    assert sorted(m.event for m in records) == ["contribution.paid", "contribution.reversed"]
    # Once: nothing left to reverse.
    assert client.get("/api/v1/departments/batch?year=2020", headers=mz).get_json()["lines"] == []
