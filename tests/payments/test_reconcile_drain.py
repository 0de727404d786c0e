"""`payments reconcile-open` drains every due order, in batches, within a time budget, and
several workers can run it at once on PostgreSQL (FOR UPDATE SKIP LOCKED).

It used to heal at most 200 orders per call (`BATCH = 200`), so a scenario run ended with
orders paid at the gateway and still open in the API; here a batch of two must still heal all.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select, text

from api.payments.healing import reconcile_open
from api.payments.models import Contribution, PaymentOrder
from tests.payments.factories import Member, make_account, make_household, token_for


@pytest.fixture
def pinned(shop: Any) -> Any:
    saved = shop.app.config.get("APP_TODAY", "")
    shop.app.config["APP_TODAY"] = "2019-11-05"
    yield shop
    shop.app.config["APP_TODAY"] = saved


@pytest.fixture
def pg_pinned(pg_shop: Any) -> Any:
    saved = pg_shop.app.config.get("APP_TODAY", "")
    pg_shop.app.config["APP_TODAY"] = "2019-11-05"
    yield pg_shop
    pg_shop.app.config["APP_TODAY"] = saved


def _orders(live: Any, count: int) -> list[str]:
    """`count` households, each with an order open at the sandbox."""
    app: Flask = live.app
    db = app.extensions["database"]
    out = []
    for n in range(count):
        with app.app_context():
            session = db.session()
            household = make_household(session, [Member(date(1980, 1, 1))])
            account = make_account(session, household)
            session.commit()
            token, household_id = token_for(app, account), household.id
            db.session.remove()
        order = requests.post(
            live.url + "/api/v1/payments",
            json={"household_id": household_id, "year": 2020, "channel": "wechat",
                  "insurances": ["medical"]},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"d{n}"},
            timeout=30,
        )  # fmt: skip
        assert order.status_code == 201, order.json()
        out.append(order.json()["out_trade_no"])
    return out


def _pay_silently(sandbox: Any, out_trade_no: str) -> None:
    """Paid at the gateway, the notification lost: only healing can book it."""
    r = requests.post(
        f"{sandbox.base_url}/sandbox/control/pay",
        json={"channel": "wechat", "out_trade_no": out_trade_no, "faults": ["drop"]},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def _statuses(app: Flask, numbers: list[str]) -> dict[str, str]:
    db = app.extensions["database"]
    with app.app_context():
        rows = db.session().execute(
            select(PaymentOrder.out_trade_no, PaymentOrder.status).where(
                PaymentOrder.out_trade_no.in_(numbers)
            )
        )
        result = {n: s for n, s in rows}
        db.session.remove()
    return result


def _contributions(app: Flask, numbers: list[str]) -> int:
    db = app.extensions["database"]
    with app.app_context():
        count = db.session().scalar(
            select(func.count()).where(Contribution.out_trade_no.in_(numbers))
        )
        db.session.remove()
    return int(count or 0)


def test_every_due_order_is_healed_in_small_batches(pinned: Any, sandbox: Any) -> None:
    app = pinned.app
    numbers = _orders(pinned, 5)
    paid, unpaid = numbers[:4], numbers[4:]
    for n in paid:
        _pay_silently(sandbox, n)
    with app.app_context():
        db, settings = app.extensions["database"], app.config["SETTINGS"]
        from datetime import timedelta

        counts = reconcile_open(db, settings, older_than=timedelta(0), batch=2)
    assert counts["checked"] == 5 and counts["applied"] == counts["paid"] == 4
    assert counts["still_open"] == 1 and counts["remaining"] == 0
    assert counts["batches"] == 3  # 2 + 2 + 1: a cap of one batch would have left three
    statuses = _statuses(app, numbers)
    assert [statuses[n] for n in paid] == ["paid"] * 4 and statuses[unpaid[0]] == "open"
    assert _contributions(app, paid) == 4  # one medical premium each, booked once

    # A second round books nothing again (exactly once) and still reports the open order.
    with app.app_context():
        again = reconcile_open(db, settings, older_than=timedelta(0), batch=2)
    assert again.get("paid", 0) == 0 and again["still_open"] == 1
    assert _contributions(app, paid) == 4


def test_the_time_budget_leaves_the_rest_counted_for_the_next_round(
    pinned: Any, sandbox: Any
) -> None:
    app = pinned.app
    numbers = _orders(pinned, 3)
    for n in numbers:
        _pay_silently(sandbox, n)
    from datetime import timedelta

    with app.app_context():
        db, settings = app.extensions["database"], app.config["SETTINGS"]
        spent = reconcile_open(db, settings, older_than=timedelta(0), budget_seconds=0)
        assert spent["checked"] == 0 and spent["remaining"] == 3
        done = reconcile_open(db, settings, older_than=timedelta(0))
    assert done["applied"] == 3 and done["remaining"] == 0


def test_the_command_takes_batch_size_and_budget_and_prints_counts(
    pinned: Any, sandbox: Any
) -> None:
    app = pinned.app
    numbers = _orders(pinned, 3)
    for n in numbers:
        _pay_silently(sandbox, n)
    result = app.test_cli_runner().invoke(
        args=["payments", "reconcile-open", "--older-than-minutes", "0", "--batch-size", "1",
              "--budget-seconds", "60"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["applied"] == 3 and report["batches"] == 3 and report["remaining"] == 0
    assert {"checked", "closed", "still_open", "skipped"} <= set(report)


def test_an_order_another_worker_holds_is_skipped_not_waited_for(
    pg_pinned: Any, sandbox: Any
) -> None:
    """PostgreSQL: the row lock of another worker (or a notification being applied) makes this
    worker skip that order instead of waiting or healing it twice."""
    from datetime import timedelta

    app = pg_pinned.app
    numbers = _orders(pg_pinned, 3)
    for n in numbers:
        _pay_silently(sandbox, n)
    db, settings = app.extensions["database"], app.config["SETTINGS"]
    with db.engine.connect() as other:
        other.execute(
            text("SELECT id FROM payment_orders WHERE out_trade_no = :n FOR UPDATE"),
            {"n": numbers[0]},
        )
        with app.app_context():
            counts = reconcile_open(db, settings, older_than=timedelta(0))
        other.rollback()
    assert counts["skipped"] == 1 and counts["applied"] == 2
    statuses = _statuses(app, numbers)
    assert statuses[numbers[0]] == "open" and statuses[numbers[1]] == statuses[numbers[2]] == "paid"
    with app.app_context():
        rest = reconcile_open(db, settings, older_than=timedelta(0))
    assert rest["applied"] == 1 and rest["skipped"] == 0
    assert _contributions(app, numbers) == 3


def test_two_workers_at_once_book_every_payment_exactly_once(pg_pinned: Any, sandbox: Any) -> None:
    """PostgreSQL: two reconcile-open rounds racing over the same orders share them (SKIP
    LOCKED) and book each payment once between them."""
    import threading
    from datetime import timedelta

    app = pg_pinned.app
    numbers = _orders(pg_pinned, 6)
    for n in numbers:
        _pay_silently(sandbox, n)
    db, settings = app.extensions["database"], app.config["SETTINGS"]
    results: list[dict[str, int]] = []

    def worker() -> None:
        with app.app_context():
            results.append(reconcile_open(db, settings, older_than=timedelta(0), batch=2))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2
    assert sum(r["applied"] for r in results) == 6
    assert sum(r.get("error", 0) for r in results) == 0
    assert set(_statuses(app, numbers).values()) == {"paid"}
    assert _contributions(app, numbers) == 6
