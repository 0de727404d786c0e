"""Notifications posted to the notify endpoints, through the real channel adapters.

Each test checks the three things a notification may touch — the order, the contributions
(with their tax records) and the callback log — and the exact reply the gateway reads.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from api.payments.channels import wechat_v2_protocol as proto
from api.payments.models import (
    ChannelNotification,
    Contribution,
    OrderStatus,
    PaymentOrder,
    Refund,
)
from api.payments.outbox import OutboxMessage
from tests.payments.factories import Member, make_household, make_order
from tests.payments.gateway_messages import alipay_notification, wechat_v2_payment

WECHAT = "/api/v1/payments/notify/wechat"
ALIPAY = "/api/v1/payments/notify/alipay"


@pytest.fixture
def family(session):
    return make_household(
        session,
        [
            Member(date(1975, 3, 9), pension_tier=300),
            Member(date(1978, 7, 1)),
            Member(date(2012, 1, 5)),
        ],
    )


@pytest.fixture
def settings(app):
    return app.config["SETTINGS"]


def _items(household):
    adult, spouse, child = household.members
    return [
        (adult, "medical", 28000),
        (spouse, "medical", 28000),
        (child, "medical", 28000),
        (adult, "pension", 30000),
    ]


def _count(session, model, **where):
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return session.scalar(query)


def _log(session):
    return session.scalars(select(ChannelNotification).order_by(ChannelNotification.id)).all()


def test_genuine_wechat_payment_is_applied_once(client, session, settings, family) -> None:
    order = make_order(session, family, items=_items(family))
    body = wechat_v2_payment(settings, out_trade_no=order.out_trade_no, amount_fen=order.amount_fen)

    first = client.post(WECHAT, data=body, content_type="text/xml")
    assert first.status_code == 200
    assert first.data == proto.SUCCESS_XML
    session.expire_all()
    paid = session.get(PaymentOrder, order.id)
    assert paid.status == OrderStatus.PAID
    assert paid.transaction_id == "4200000540202005267407409907"
    contributions = session.scalars(
        select(Contribution).where(Contribution.order_id == order.id)
    ).all()
    assert sorted((c.person_id, c.insurance) for c in contributions) == sorted(
        (p.id, ins) for p, ins, _ in _items(family)
    )
    assert {c.source for c in contributions} == {"wechat"}
    assert sum(c.amount_fen for c in contributions) == order.amount_fen
    records = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.contribution_id.in_([c.id for c in contributions])
        )
    ).all()
    assert len(records) == 4 and {r.event for r in records} == {"contribution.paid"}

    again = client.post(WECHAT, data=body, content_type="text/xml")
    assert again.data == proto.SUCCESS_XML
    assert _count(session, Contribution, order_id=order.id) == 4
    log = _log(session)
    assert [(n.outcome, n.signature_valid) for n in log] == [
        ("applied", True),
        ("duplicate", True),
    ]
    assert log[0].order_id == order.id and log[0].raw_body == body


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({"key": "WRONGKEYWRONGKEYWRONGKEYWRONGKEY"}, "bad_signature"),
        ({"appid": "wx0000000000000000"}, "wrong_app_id"),
        ({"mch_id": "1900000999"}, "wrong_merchant"),
        ({"amount_delta": 1}, "amount_mismatch"),
        ({"amount_delta": -1}, "amount_mismatch"),
        ({"unknown_order": True}, "unknown_order"),
    ],
)
def test_forged_or_mismatched_wechat_notification_changes_nothing(
    client, session, settings, family, tamper, reason
) -> None:
    order = make_order(session, family, items=_items(family))
    body = wechat_v2_payment(
        settings,
        out_trade_no="SSI20191105UNKNOWNORDER00000"
        if tamper.get("unknown_order")
        else order.out_trade_no,
        amount_fen=order.amount_fen + tamper.get("amount_delta", 0),
        key=tamper.get("key"),
        appid=tamper.get("appid"),
        mch_id=tamper.get("mch_id"),
    )
    response = client.post(WECHAT, data=body, content_type="text/xml")
    assert response.status_code == 200
    assert b"<return_code><![CDATA[FAIL]]></return_code>" in response.data
    session.expire_all()
    assert session.get(PaymentOrder, order.id).status == OrderStatus.OPEN
    assert _count(session, Contribution) == 0
    assert _count(session, OutboxMessage) == 0
    (entry,) = _log(session)
    assert (entry.outcome, entry.reason) == ("rejected", reason)
    assert entry.raw_body == body


@pytest.mark.parametrize(
    ("url", "body", "content_type", "reply"),
    [
        (WECHAT, b"<xml><return_code>SUCCESS</return_code>", "text/xml", b"FAIL"),
        (WECHAT, b"not xml at all", "application/octet-stream", b"FAIL"),
        (ALIPAY, b"%zz=&&sign=", "application/x-www-form-urlencoded", b"fail"),
        (ALIPAY, b"", "text/plain", b"fail"),
    ],
)
def test_malformed_notifications_are_logged_and_refused(
    client, session, url, body, content_type, reply
) -> None:
    response = client.post(url, data=body, content_type=content_type)
    assert response.status_code == 200
    assert reply in response.data
    (entry,) = _log(session)
    assert entry.outcome == "rejected"
    assert entry.reason in ("malformed", "bad_signature")
    assert entry.raw_body == body


def test_genuine_alipay_payment_and_trade_closed(client, session, settings, family) -> None:
    paid_order = make_order(session, family, channel="alipay", items=_items(family)[:3])
    body = alipay_notification(
        settings, out_trade_no=paid_order.out_trade_no, amount_fen=paid_order.amount_fen
    )
    response = client.post(ALIPAY, data=body, content_type="application/x-www-form-urlencoded")
    assert response.data == b"success"
    session.expire_all()
    assert session.get(PaymentOrder, paid_order.id).status == OrderStatus.PAID
    assert _count(session, Contribution, order_id=paid_order.id, source="alipay") == 3

    other = make_household(session, [Member(date(1990, 1, 1))])
    open_order = make_order(session, other, channel="alipay")
    closed = alipay_notification(
        settings,
        out_trade_no=open_order.out_trade_no,
        amount_fen=open_order.amount_fen,
        trade_status="TRADE_CLOSED",
    )
    response = client.post(ALIPAY, data=closed, content_type="application/x-www-form-urlencoded")
    assert response.data == b"success"
    session.expire_all()
    assert session.get(PaymentOrder, open_order.id).status == OrderStatus.CLOSED
    assert _log(session)[-1].outcome == "applied"


def test_alipay_wrong_seller_is_rejected(client, session, settings, family) -> None:
    order = make_order(session, family, channel="alipay")
    body = alipay_notification(
        settings, out_trade_no=order.out_trade_no, amount_fen=order.amount_fen, seller_id="2088999"
    )
    response = client.post(ALIPAY, data=body, content_type="application/x-www-form-urlencoded")
    assert response.data == b"fail"
    assert _log(session)[-1].reason == "wrong_merchant"
    assert _count(session, Contribution) == 0


def test_payment_for_a_closed_order_is_refunded_in_full(client, session, settings, family) -> None:
    order = make_order(session, family, status=OrderStatus.CLOSED, items=_items(family))
    body = wechat_v2_payment(settings, out_trade_no=order.out_trade_no, amount_fen=order.amount_fen)
    response = client.post(WECHAT, data=body, content_type="text/xml")
    assert response.data == proto.SUCCESS_XML
    session.expire_all()
    assert session.get(PaymentOrder, order.id).status == OrderStatus.PAID_AFTER_CLOSE
    assert _count(session, Contribution) == 0
    (refund,) = session.scalars(select(Refund).where(Refund.order_id == order.id)).all()
    assert (refund.state, refund.reason, refund.amount_fen) == (
        "requested",
        "paid_after_close",
        order.amount_fen,
    )
    assert len(refund.items) == 4


def test_payment_for_items_paid_meanwhile_books_the_rest_and_refunds_the_overlap(
    client, session, settings, family
) -> None:
    """The village agent took cash for the family's medical premiums while the WeChat order
    (medical for all + pension) was open: the WeChat payment books only the pension and the
    medical part is refunded automatically."""
    order = make_order(session, family, items=_items(family))
    for person, insurance, amount in _items(family)[:3]:
        session.add(
            Contribution(
                person_id=person.id,
                household_id=family.id,
                insurance=insurance,
                year=2020,
                amount_fen=amount,
                government_pays_fen=0,
                subsidy_fen=0,
                source="agent",
                paid_at=order.created_at,
                late=False,
                benefit_start=date(2020, 1, 1),
                status="paid",
            )
        )
    session.flush()
    body = wechat_v2_payment(settings, out_trade_no=order.out_trade_no, amount_fen=order.amount_fen)
    assert client.post(WECHAT, data=body, content_type="text/xml").data == proto.SUCCESS_XML
    session.expire_all()
    assert session.get(PaymentOrder, order.id).status == OrderStatus.DUPLICATE
    booked = session.scalars(select(Contribution).where(Contribution.order_id == order.id)).all()
    assert [c.insurance for c in booked] == ["pension"]
    assert _count(session, Contribution, status="paid") == 4  # never counted twice
    (refund,) = session.scalars(select(Refund).where(Refund.order_id == order.id)).all()
    assert (refund.state, refund.reason, refund.amount_fen) == (
        "requested",
        "duplicate_payment",
        3 * 28000,
    )
    assert _log(session)[-1].reason == "duplicate_payment"


def test_refused_notifications_are_in_the_audit_log(client, session, settings, family) -> None:
    from api.audit.models import AuditEvent

    order = make_order(session, family, items=_items(family))
    forged = wechat_v2_payment(
        settings,
        out_trade_no=order.out_trade_no,
        amount_fen=order.amount_fen,
        key="WRONGKEYWRONGKEYWRONGKEYWRONGKEY",
    )
    client.post(WECHAT, data=forged, content_type="text/xml")
    off = wechat_v2_payment(
        settings, out_trade_no=order.out_trade_no, amount_fen=order.amount_fen - 1
    )
    client.post(WECHAT, data=off, content_type="text/xml")
    refusals = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "payments.notification.refused")
    ).all()
    assert sorted(e.detail["reason"] for e in refusals) == ["amount_mismatch", "bad_signature"]
    assert {e.outcome for e in refusals} == {"refused"}


def test_a_concurrent_payment_of_the_same_premium_is_retried_as_a_duplicate(
    client, session, settings, family, monkeypatch
) -> None:
    """The agent's cash receipt commits between our overlap check and our INSERT: the partial
    unique index refuses the second paid contribution, the transaction is rolled back and
    applied again, and the second pass sees the overlap."""
    import api.payments.settlement as settlement

    order = make_order(session, family, items=_items(family))
    adult = family.members[0]
    real = settlement.already_paid
    calls = []

    session.add(
        Contribution(
            person_id=adult.id,
            household_id=family.id,
            insurance="pension",
            year=2020,
            amount_fen=30000,
            government_pays_fen=0,
            subsidy_fen=3000,
            source="agent",
            paid_at=order.created_at,
            late=False,
            benefit_start=date(2020, 1, 1),
            status="paid",
        )
    )
    session.flush()

    def racing(session_, **kwargs):
        calls.append(1)
        # The first pass does not see the agent's row (it committed a moment later).
        return set() if len(calls) == 1 else real(session_, **kwargs)

    monkeypatch.setattr(settlement, "already_paid", racing)
    body = wechat_v2_payment(settings, out_trade_no=order.out_trade_no, amount_fen=order.amount_fen)
    assert client.post(WECHAT, data=body, content_type="text/xml").data == proto.SUCCESS_XML
    assert len(calls) == 2
    session.expire_all()
    assert session.get(PaymentOrder, order.id).status == OrderStatus.DUPLICATE
    assert _count(session, Contribution, status="paid") == 4


def test_with_app_today_pinned_the_log_and_refund_numbers_carry_the_pinned_date(
    app, client, session, settings, family
) -> None:
    """Issue 10, defect 10: orders carried the pinned date but the callback log's received_at
    and refund numbers the real one, so filtering the log by the demo's date found nothing."""
    from api.auth.models import StaffAccount
    from api.auth.tokens import issue_token
    from api.clock import BEIJING
    from api.payments.refunds import request_refund

    saved = app.config.get("APP_TODAY", "")
    app.config["APP_TODAY"] = "2019-11-05"
    try:
        order = make_order(session, family, items=_items(family))
        body = wechat_v2_payment(
            settings, out_trade_no=order.out_trade_no, amount_fen=order.amount_fen
        )
        assert client.post(WECHAT, data=body, content_type="text/xml").data == proto.SUCCESS_XML
        [row] = _log(session)
        assert row.received_at.astimezone(BEIJING).date() == date(2019, 11, 5)
        staff = StaffAccount(
            username="fin-pin", display_name="财务", password_hash="x", role="finance"
        )
        session.add(staff)
        session.flush()
        token = issue_token(secret_key=settings.SECRET_KEY, kind="staff", account_id=staff.id)
        found = client.get(
            "/api/v1/finance/notifications?date_from=2019-11-05&date_to=2019-11-05",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert found.status_code == 200, found.json
        assert [n["id"] for n in found.json] == [row.id]

        refund = request_refund(
            session, order=order, items=[order.items[0]], reason="duplicate", actor="test"
        )
        assert refund.out_refund_no.startswith("SSR20191105")
    finally:
        app.config["APP_TODAY"] = saved
