"""The state machine: legal moves win once, illegal ones raise, every move is recorded."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from api.audit.models import AuditEvent
from api.payments.models import OrderEvent, OrderStatus, PaymentOrder
from api.payments.states import (
    ORDER_TRANSITIONS,
    IllegalTransition,
    transition_order,
)
from tests.payments.factories import Member, make_household, make_order


def test_every_state_is_in_the_table() -> None:
    assert set(ORDER_TRANSITIONS) == {s.value for s in OrderStatus}


def test_transition_wins_once_and_is_recorded(session) -> None:
    household = make_household(session, [Member(date(1980, 5, 1))])
    order = make_order(session, household)
    assert transition_order(session, order, OrderStatus.PAID, actor="gateway:wechat")
    assert order.status == OrderStatus.PAID
    session.expire_all()
    assert session.get(PaymentOrder, order.id).status == OrderStatus.PAID

    # A second writer that read the order while it was open loses: nothing is written.
    stale_copy = PaymentOrder(id=order.id, out_trade_no=order.out_trade_no, status="open")
    assert not transition_order(session, stale_copy, OrderStatus.CLOSED, actor="expirer")
    session.expire_all()
    assert session.get(PaymentOrder, order.id).status == OrderStatus.PAID

    events = session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
    ).all()
    assert [(e.from_state, e.to_state, e.actor) for e in events] == [
        ("open", "paid", "gateway:wechat")
    ]
    audit = session.scalars(
        select(AuditEvent).where(AuditEvent.subject == f"order:{order.out_trade_no}")
    ).all()
    assert [a.action for a in audit] == ["payments.order.paid"]


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("paid", "open"),
        ("refunded", "paid"),
        ("closed", "paid"),  # a closed order paid anyway is paid_after_close, never paid
        ("open", "refunded"),
        ("failed", "open"),
    ],
)
def test_illegal_transitions_raise(session, source: str, target: str) -> None:
    household = make_household(session, [Member(date(1980, 5, 1))])
    order = make_order(session, household, status=source)
    with pytest.raises(IllegalTransition):
        transition_order(session, order, target, actor="test")
    session.expire_all()
    assert session.get(PaymentOrder, order.id).status == source
