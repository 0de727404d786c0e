"""A notification arriving while the run heals the same payment; the next day's re-check of
`missing_channel` (日切); bad usage. Live API (both backends) + the in-process sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from api.payments import books
from api.payments.models import Contribution, OrderEvent
from api.reconciliation.models import ReconciliationItem, ReconciliationItemEvent
from tests.reconciliation.test_reconcile_sandbox import (
    _bill_day,
    _count,
    _faults,
    _get_status,
    _items,
    _paid_family,
    reconcile,
)


@pytest.fixture
def wechat_shop(shop: Any) -> Any:
    saved = shop.app.config.get("APP_TODAY", "")
    shop.app.config["APP_TODAY"] = "2019-11-05"
    yield shop
    shop.app.config["APP_TODAY"] = saved


def test_healed_missing_ours_is_counted_once_when_its_notification_arrives_during_the_run(
    wechat_shop: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = wechat_shop.app
    dropped = _paid_family(wechat_shop, sandbox, "wechat", "late", ["drop"])
    day = _bill_day(sandbox, "wechat", dropped)
    real_heal = books.heal_payment
    calls: list[str] = []

    def notification_first(db: Any, settings: Any, out_trade_no: str, channel: str) -> str:
        # The gateway's retry lands between the run's matching and its heal.
        _faults(sandbox, [], out_trade_no)
        r = requests.post(
            f"{sandbox.base_url}/sandbox/control/payment-notify",
            json={"channel": channel, "out_trade_no": out_trade_no},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        sandbox.sandbox.notifier.wait_idle(10)
        assert _get_status(app, out_trade_no) == "paid"
        calls.append(out_trade_no)
        return real_heal(db, settings, out_trade_no, channel)

    monkeypatch.setattr(books, "heal_payment", notification_first)
    code, body, output = reconcile(app, "--channel", "wechat", "--date", day)
    assert code == 0, output
    assert body is not None and body["counts"]["missing_ours"] == 1
    assert body["counts"]["matched"] == 0
    assert calls == [dropped]
    item = _items(app)[dropped]
    assert (item.type, item.heal_result, item.status) == ("missing_ours", "healed", "resolved")
    # Booked exactly once: one paid transition, one set of contributions.
    assert _count(app, OrderEvent, OrderEvent.to_state == "paid") == 1
    assert _count(app, Contribution) == 1
    code, again, output = reconcile(app, "--channel", "wechat", "--date", day)
    assert code == 0 and again is not None, output
    assert again["counts"]["missing_ours"] == 1 and again["new_items"] == 0
    assert calls == [dropped]  # a resolved item is never healed again


def test_missing_channel_waits_for_the_next_days_bill(
    wechat_shop: Any, sandbox: Any, tmp_path: Path
) -> None:
    app = wechat_shop.app
    late = _paid_family(wechat_shop, sandbox, "wechat", "late")
    lost = _paid_family(wechat_shop, sandbox, "wechat", "lost")
    _paid_family(wechat_shop, sandbox, "wechat", "fine")  # so that the day has a bill
    day = _bill_day(sandbox, "wechat", late)
    # The next day's bill carries `late` (cut over midnight at the channel), not `lost`.
    _faults(sandbox, ["bill_omit"], lost)
    next_bill = requests.get(f"{sandbox.base_url}/sandbox/control/bill/wechat",
                             params={"date": day}, timeout=10).content  # fmt: skip
    _faults(sandbox, ["bill_omit"], late)
    _faults(sandbox, ["bill_omit"], lost)
    code, body, output = reconcile(app, "--channel", "wechat", "--date", day)
    assert code == 0 and body is not None, output
    assert body["counts"]["missing_channel"] == 2
    items = _items(app)
    assert {items[late].status, items[lost].status} == {"recheck"}

    following = tmp_path / "next.csv"
    following.write_bytes(next_bill)
    next_day = _next(day)
    code, body, output = reconcile(app, "--channel", "wechat", "--date", next_day, "--file",
                                   str(following))  # fmt: skip
    assert code == 0 and body is not None, output
    items = _items(app)
    assert (items[late].status, items[late].resolution) == ("resolved", "carried_over")
    assert (items[lost].status, items[lost].resolution) == ("open", None)  # into suspense
    history = _scalar_list(
        app,
        select(ReconciliationItemEvent.action)
        .where(ReconciliationItemEvent.item_id == items[late].id)
        .order_by(ReconciliationItemEvent.id),
    )
    assert history == ["created", "recheck"]
    assert _count(app, ReconciliationItem) == 2


def _next(day: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _scalar_list(app: Any, query: Any) -> list[Any]:
    db = app.extensions["database"]
    with app.app_context():
        values = list(db.session().scalars(query))
        db.session.remove()
    return values


@pytest.mark.parametrize(
    "args",
    [
        ["--channel", "unionpay", "--date", "2026-01-01"],
        ["--channel", "wechat", "--date", "2026-13-01"],
        ["--channel", "wechat"],
    ],
)
def test_bad_usage_exits_2(app: Any, args: list[str]) -> None:
    result = app.test_cli_runner().invoke(args=["reconcile", "run", *args])
    assert result.exit_code == 2, result.output
