"""Races of agent collection: gapless numbering under concurrent agents (PostgreSQL), and a
household paid online and in cash at once — exactly one wins, the other is refused or
refunded through the duplicate-payment path, never counted twice."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import clock
from api.auth.models import StaffAccount
from api.collection import service
from api.collection.models import Receipt, ReceiptCounter
from api.payments.cash import AlreadyPaid
from api.payments.channels import ChannelTrade
from api.payments.channels.base import TradeState
from api.payments.models import Contribution, OrderStatus, PaymentOrder, Refund
from api.payments.notify import in_transaction
from api.payments.settlement import apply_payment
from tests.collection.factories import (
    TODAY,
    collect_body,
    make_household,
    make_staff,
    make_village,
    staff_token,
)
from tests.payments.factories import make_order

ON = date.fromisoformat(TODAY)
MEDICAL_FEN = 26000


def _choices(household_id: int, person_ids: list[int]) -> list[service.Choice]:
    del household_id
    return [service.Choice(person_id=pid, insurances=("medical",)) for pid in person_ids]


def _collect(app: Flask, agent_id: int, household: tuple[int, list[int]], key: str) -> str:
    """One collection in its own session, as a request would; 'issued' or 'refused'."""
    database = app.extensions["database"]
    with app.app_context():
        try:
            staff = database.session().get(StaffAccount, agent_id)
            service.collect_once(
                database,
                staff=staff,
                household_id=household[0],
                year=2020,
                choices=_choices(*household),
                today=ON,
                now=clock.now(TODAY),
                idempotency_key=key,
                request_hash=key,
            )
            return "issued"
        except AlreadyPaid:
            return "refused"
        finally:
            database.session.remove()


def test_two_agents_of_one_village_number_receipts_without_gap_or_duplicate(
    pg_committing_app: Flask,
) -> None:
    app = pg_committing_app
    engine = app.extensions["database"].engine
    with Session(engine) as session:
        village = make_village(session)
        households = [make_household(session, village) for _ in range(12)]
        agents = [make_staff(session, "agent", village=village) for _ in range(2)]
        session.commit()
        village_id = village.id
        work = [(h.id, [p.id for p in h.members]) for h in households]
        agent_ids = [a.id for a in agents]
    # Each agent collects every household: each household is won by exactly one of them,
    # and every refused collection rolls its number back.
    outcomes: dict[int, list[str]] = {a: [] for a in agent_ids}
    barrier = threading.Barrier(len(agent_ids))

    def run(agent_id: int) -> None:
        barrier.wait()
        for index, household in enumerate(work):
            outcomes[agent_id].append(_collect(app, agent_id, household, f"{agent_id}-{index}"))

    threads = [threading.Thread(target=run, args=(a,)) for a in agent_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()

    issued = sum(o.count("issued") for o in outcomes.values())
    assert issued == len(work)
    for index in range(len(work)):
        assert sorted(outcomes[a][index] for a in agent_ids) == ["issued", "refused"]
    with Session(engine) as session:
        receipts = session.scalars(
            select(Receipt).where(Receipt.village_id == village_id).order_by(Receipt.seq)
        ).all()
        assert [r.seq for r in receipts] == list(range(1, len(work) + 1))
        assert len({r.receipt_no for r in receipts}) == len(work)
        assert len({r.household_id for r in receipts}) == len(work)
        counter = session.get(ReceiptCounter, (village_id, 2020))
        assert counter is not None and counter.last_seq == len(work)
        paid = session.scalars(
            select(Contribution).where(Contribution.household_id.in_([h for h, _ in work]))
        ).all()
        assert len(paid) == sum(len(p) for _, p in work)  # once each


def _trade(order: Any) -> ChannelTrade:
    return ChannelTrade(
        order.out_trade_no,
        TradeState.PAID,
        order.amount_fen,
        f"4200{order.id:012d}",
        datetime.now(UTC),
        None,
        None,
        None,
    )


def test_a_notification_for_persons_meanwhile_paid_in_cash_is_refunded(
    app: Flask, client: Any, session: Any
) -> None:
    app.config["APP_TODAY"] = TODAY
    village = make_village(session)
    household = make_household(session, village)
    agent = make_staff(session, "agent", village=village)
    order = make_order(
        session, household, items=[(p, "medical", MEDICAL_FEN) for p in household.members]
    )
    session.commit()
    # The resident opened an online order; the agent then takes the cash.
    answer = client.post(
        "/api/v1/collection/receipts",
        json=collect_body(household, tier=None),
        headers={**staff_token(app, agent), "Idempotency-Key": "cash-1"},
    )
    assert answer.status_code == 201, answer.get_json()
    # The resident pays the old order anyway: the notification finds every item paid.
    applied = apply_payment(session, trade=_trade(order), channel="wechat", actor="test")
    session.commit()
    assert applied.reason == "duplicate_payment"
    session.refresh(order)
    assert order.status == OrderStatus.DUPLICATE
    refund = session.scalars(select(Refund).where(Refund.order_id == order.id)).one()
    assert (refund.amount_fen, refund.reason) == (order.amount_fen, "duplicate_payment")
    paid = session.scalars(
        select(Contribution).where(
            Contribution.household_id == household.id, Contribution.status == "paid"
        )
    ).all()
    assert sorted(c.source for c in paid) == ["agent"] * 3  # counted once, in cash


def test_online_payment_and_cash_collection_racing_exactly_one_wins(
    pg_committing_app: Flask,
) -> None:
    app = pg_committing_app
    engine = app.extensions["database"].engine
    database = app.extensions["database"]
    with Session(engine) as session:
        village = make_village(session)
        agent = make_staff(session, "agent", village=village)
        cases = []
        for _ in range(6):
            household = make_household(session, village)
            order = make_order(
                session,
                household,
                items=[(p, "medical", MEDICAL_FEN) for p in household.members],
            )
            cases.append((household.id, [p.id for p in household.members], order.out_trade_no))
        session.commit()
        agent_id, village_id = agent.id, village.id

    winners = []
    for index, (household_id, person_ids, out_trade_no) in enumerate(cases):
        results: dict[str, str] = {}
        barrier = threading.Barrier(2)

        def online(
            out_trade_no: str = out_trade_no,
            barrier: threading.Barrier = barrier,
            results: dict[str, str] = results,
        ) -> None:
            with app.app_context():
                barrier.wait()
                with Session(engine) as probe:
                    order = probe.scalars(
                        select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no)
                    ).one()
                    trade = _trade(order)
                applied = in_transaction(
                    database,
                    lambda s: apply_payment(s, trade=trade, channel="wechat", actor="test"),
                )
                results["online"] = applied.reason or "paid"
                database.session.remove()

        def cash(
            household: tuple[int, list[int]] = (household_id, person_ids),
            key: str = f"race-{index}",
            barrier: threading.Barrier = barrier,
            results: dict[str, str] = results,
        ) -> None:
            barrier.wait()
            results["cash"] = _collect(app, agent_id, household, key)

        threads = [threading.Thread(target=online), threading.Thread(target=cash)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive()

        with Session(engine) as session:
            paid = session.scalars(
                select(Contribution).where(
                    Contribution.household_id == household_id, Contribution.status == "paid"
                )
            ).all()
            assert len(paid) == len(person_ids)  # every premium counted exactly once
            sources = {c.source for c in paid}
            assert len(sources) == 1
            order = session.scalars(
                select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no)
            ).one()
            refunds = session.scalars(select(Refund).where(Refund.order_id == order.id)).all()
            if sources == {"agent"}:
                assert results == {"cash": "issued", "online": "duplicate_payment"}
                assert order.status == OrderStatus.DUPLICATE
                assert [r.amount_fen for r in refunds] == [order.amount_fen]
            else:
                assert sources == {"wechat"}
                assert results == {"cash": "refused", "online": "paid"}
                assert order.status == OrderStatus.PAID and refunds == []
            winners.append(sources.pop())
    with Session(engine) as session:
        seqs = session.scalars(
            select(Receipt.seq).where(Receipt.village_id == village_id).order_by(Receipt.seq)
        ).all()
        assert list(seqs) == list(range(1, winners.count("agent") + 1))  # refused: no gap


def test_cash_for_persons_just_paid_online_is_refused(
    app: Flask, client: Any, session: Any
) -> None:
    app.config["APP_TODAY"] = TODAY
    village = make_village(session)
    household = make_household(session, village)
    agent = make_staff(session, "agent", village=village)
    order = make_order(
        session, household, items=[(p, "medical", MEDICAL_FEN) for p in household.members]
    )
    session.commit()
    applied = apply_payment(session, trade=_trade(order), channel="wechat", actor="test")
    session.commit()
    assert applied.reason is None
    answer = client.post(
        "/api/v1/collection/receipts",
        json=collect_body(household, tier=None),
        headers={**staff_token(app, agent), "Idempotency-Key": "cash-late"},
    )
    assert answer.status_code == 409
    assert answer.get_json()["code"] == "already_paid"
    assert session.scalars(select(Receipt).where(Receipt.village_id == village.id)).all() == []
    assert session.get(ReceiptCounter, (village.id, 2020)) is None  # no number consumed


def test_two_copies_of_one_request_sent_at_once_give_one_receipt(
    pg_committing_app: Flask,
) -> None:
    app = pg_committing_app
    engine = app.extensions["database"].engine
    database = app.extensions["database"]
    with Session(engine) as session:
        village = make_village(session)
        household = make_household(session, village)
        agent = make_staff(session, "agent", village=village)
        session.commit()
        agent_id, household_id, village_id = agent.id, household.id, village.id
        choices = [
            service.Choice(
                person_id=p.id,
                insurances=("medical", "pension") if p.birth_date.year < 2000 else ("medical",),
                pension_tier=500 if p.birth_date.year < 2000 else None,
            )
            for p in household.members
        ]
    answers: list[tuple[str, bool]] = []
    barrier = threading.Barrier(2)

    def send() -> None:
        with app.app_context():
            barrier.wait()
            try:
                receipt, issued = service.collect_once(
                    database,
                    staff=database.session().get(StaffAccount, agent_id),
                    household_id=household_id,
                    year=2020,
                    choices=choices,
                    today=ON,
                    now=clock.now(TODAY),
                    idempotency_key="same-key",
                    request_hash="same-body",
                )
                answers.append((receipt.receipt_no, issued))
            finally:
                database.session.remove()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert len(answers) == 2
    assert answers[0][0] == answers[1][0]
    assert sorted(issued for _, issued in answers) == [False, True]
    with Session(engine) as session:
        receipts = session.scalars(select(Receipt).where(Receipt.village_id == village_id)).all()
        assert [r.seq for r in receipts] == [1]
        assert receipts[0].amount_fen == 3 * MEDICAL_FEN + 2 * 50000
