"""An approved reconciliation `refund` moves money, over the real sandbox: WeChat v2, v3 and
Alipay, SQLite and PostgreSQL.

- `amount_mismatch` with the channel's amount higher (the sandbox's `overcharge`): exactly the
  excess goes back, the premium stays paid, and the refund's bill row then matches;
- a healed `missing_ours`: the whole order goes back, its contributions reversed once, with
  one reversal tax record each;
- `unknown_trade`: a stray refund reaches the sandbox, and its bill row then matches;
- the maker cannot approve, and a rejected proposal moves nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests
from flask import Flask
from sqlalchemy import select

from api.clock import BEIJING
from api.payments.models import Contribution, PaymentOrder, Refund, RefundItem, StrayRefund
from api.payments.outbox.models import OutboxMessage
from api.reconciliation.models import ReconciliationItem, ReconciliationItemEvent
from api.reconciliation.refunds import settle_refund_items
from tests.payments.conftest import LiveServer
from tests.payments.test_payments_flows import _sandbox_order, _scalar, _staff_token, _wait
from tests.reconciliation.test_reconcile_sandbox import (
    _bill_day,
    _count,
    _get_status,
    _items,
    _paid_family,
    reconcile,
)

ITEMS = "/api/v1/finance/reconciliation/items"


def _post(shop: LiveServer, path: str, token: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        shop.url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _get_item(shop: LiveServer, item_id: int, token: str) -> dict[str, Any]:
    r = requests.get(
        f"{shop.url}{ITEMS}/{item_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _propose_and_approve(shop: LiveServer, item_id: int) -> dict[str, Any]:
    """The maker proposes a refund, is refused approving it, a colleague approves it."""
    maker, checker = _staff_token(shop.app), _staff_token(shop.app)
    proposed = _post(shop, f"{ITEMS}/{item_id}/resolve", maker,
                     {"action": "refund", "reason": "核实后原路退回"})  # fmt: skip
    assert proposed.status_code == 200, proposed.text
    assert proposed.json()["status"] == "pending_approval"
    own = _post(shop, f"{ITEMS}/{item_id}/approve", maker, {})
    assert (own.status_code, own.json()["code"]) == (403, "maker_checker")
    approved = _post(shop, f"{ITEMS}/{item_id}/approve", checker, {"note": "同意退款"})
    assert approved.status_code == 200, approved.text
    body: dict[str, Any] = approved.json()
    assert body["status"] in ("refund_pending", "resolved")
    assert body["refund_out_refund_no"]
    return body


def _settled(app: Flask, item_id: int) -> str:
    """Run the worker's settlement until the item leaves `refund_pending`."""

    def done() -> str | None:
        with app.app_context():
            settle_refund_items(app.extensions["database"], only=[item_id])
        status = _scalar(
            app, select(ReconciliationItem.status).where(ReconciliationItem.id == item_id)
        )
        return None if status == "refund_pending" else str(status)

    return str(_wait(done, timeout=20))


def _refund_day(sandbox: Any, channel: str, out_trade_no: str, out_refund_no: str) -> str:
    order = _sandbox_order(sandbox, channel, out_trade_no)
    refund = next(r for r in order["refunds"] if r["out_refund_no"] == out_refund_no)
    return datetime.fromisoformat(refund["created_at"]).astimezone(BEIJING).date().isoformat()


def _history(app: Flask, item_id: int) -> list[str]:
    db = app.extensions["database"]
    with app.app_context():
        rows = db.session().scalars(
            select(ReconciliationItemEvent.action)
            .where(ReconciliationItemEvent.item_id == item_id)
            .order_by(ReconciliationItemEvent.id)
        )
        actions = list(rows)
        db.session.remove()
    return actions


def test_excess_refund_moves_exactly_the_excess(
    channel_shop: tuple[LiveServer, str], sandbox: Any
) -> None:
    shop, channel = channel_shop
    app = shop.app
    over = _paid_family(shop, sandbox, channel, "x", ["overcharge"])
    assert _wait(lambda: _get_status(app, over) == "paid")  # notified at our amount, booked
    ours = _scalar(app, select(PaymentOrder.amount_fen).where(PaymentOrder.out_trade_no == over))
    assert _sandbox_order(sandbox, channel, over)["amount_fen"] == ours + 100
    day = _bill_day(sandbox, channel, over)
    code, body, output = reconcile(app, "--channel", channel, "--date", day)
    assert code == 0 and body is not None, output
    assert body["counts"]["amount_mismatch"] == 1
    item = _items(app)[over]
    assert (item.bill_amount_fen, item.our_amount_fen) == (ours + 100, ours)

    approved = _propose_and_approve(shop, item.id)
    assert approved["refund_amount_fen"] == 100
    number = approved["refund_out_refund_no"]
    assert _settled(app, item.id) == "resolved"

    refund = _wait(lambda: _scalar(app, select(Refund).where(Refund.out_refund_no == number)))
    assert (refund.amount_fen, refund.reason, refund.channel_total_fen) == (
        100,
        "channel_excess",
        ours + 100,
    )
    assert refund.state == "succeeded"
    assert _count(app, RefundItem, RefundItem.refund_id == refund.id) == 0  # no premium in it
    at_channel = _sandbox_order(sandbox, channel, over)["refunds"]
    assert [(r["out_refund_no"], r["amount_fen"]) for r in at_channel] == [(number, 100)]
    # The premium stays paid: no contribution reversed, the order keeps its status.
    assert _get_status(app, over) == "paid"
    assert _count(app, Contribution, Contribution.out_trade_no == over,
                  Contribution.status == "reversed") == 0  # fmt: skip
    assert _history(app, item.id)[-3:] == ["approve", "refund_requested", "refund_succeeded"]

    # The refund's bill row matches our refund: no new difference.
    refund_day = _refund_day(sandbox, channel, over, number)
    before = _count(app, ReconciliationItem)
    code, again, output = reconcile(app, "--channel", channel, "--date", refund_day)
    assert code == 0 and again is not None, output
    assert _count(app, ReconciliationItem) == before
    for outcome in ("refund_missing_ours", "refund_amount_mismatch", "status_mismatch"):
        assert again["counts"][outcome] == 0, again
    three = requests.get(
        f"{shop.url}/api/v1/finance/reconciliation/three-way?date={refund_day}&channel={channel}",
        headers={"Authorization": f"Bearer {_staff_token(app)}"},
        timeout=30,
    ).json()["channels"][0]
    assert three["bill_minus_ours_fen"] == 0, three


def test_healed_payment_refunded_whole_reverses_contributions_once(
    channel_shop: tuple[LiveServer, str], sandbox: Any
) -> None:
    shop, channel = channel_shop
    app = shop.app
    dropped = _paid_family(shop, sandbox, channel, "w", ["drop"])
    day = _bill_day(sandbox, channel, dropped)
    code, body, output = reconcile(app, "--channel", channel, "--date", day)
    assert code == 0 and body is not None, output
    item = _items(app)[dropped]
    assert (item.type, item.status, item.resolution) == ("missing_ours", "resolved", "healed")
    paid = _count(app, Contribution, Contribution.out_trade_no == dropped,
                  Contribution.status == "paid")  # fmt: skip
    assert paid == 1

    approved = _propose_and_approve(shop, item.id)
    ours = _scalar(app, select(PaymentOrder.amount_fen).where(PaymentOrder.out_trade_no == dropped))
    assert approved["refund_amount_fen"] == ours
    assert _settled(app, item.id) == "resolved"
    assert _wait(lambda: _get_status(app, dropped) == "refunded")
    number = approved["refund_out_refund_no"]
    refund = _scalar(app, select(Refund).where(Refund.out_refund_no == number))
    assert (refund.reason, refund.state, refund.amount_fen) == ("reconciliation", "succeeded", ours)

    # The notification and the processor's answer (and a healer) book it: reversed once, one
    # reversal tax record per contribution.
    contribution_ids = list(
        _scalar_all(app, select(Contribution.id).where(Contribution.out_trade_no == dropped))
    )
    assert _count(app, Contribution, Contribution.id.in_(contribution_ids),
                  Contribution.status == "reversed") == len(contribution_ids)  # fmt: skip
    reversals = _count(app, OutboxMessage, OutboxMessage.contribution_id.in_(contribution_ids),
                       OutboxMessage.event == "contribution.reversed")  # fmt: skip
    assert reversals == len(contribution_ids)
    app.test_cli_runner().invoke(
        args=["payments", "reconcile-refunds", "--older-than-minutes", "0"]
    )
    assert _count(app, OutboxMessage, OutboxMessage.contribution_id.in_(contribution_ids),
                  OutboxMessage.event == "contribution.reversed") == reversals  # fmt: skip
    # A second refund of the same order is not applicable any more.
    again = _post(shop, f"{ITEMS}/{item.id}/resolve", _staff_token(app),
                  {"action": "refund", "reason": "再退一次"})  # fmt: skip
    assert (again.status_code, again.json()["code"]) == (409, "item_not_open")


def _scalar_all(app: Flask, query: Any) -> list[Any]:
    db = app.extensions["database"]
    with app.app_context():
        values = list(db.session().scalars(query))
        db.session.remove()
    return values


def test_unknown_trade_is_sent_back_as_a_stray_refund(
    channel_shop: tuple[LiveServer, str], sandbox: Any
) -> None:
    shop, channel = channel_shop
    app = shop.app
    matched = _paid_family(shop, sandbox, channel, "s")
    r = requests.post(f"{sandbox.base_url}/sandbox/control/unknown-trade",
                      json={"channel": channel, "amount_fen": 12300}, timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    stranger = r.json()["order"]["out_trade_no"]
    day = _bill_day(sandbox, channel, matched)
    code, body, output = reconcile(app, "--channel", channel, "--date", day)
    assert code == 0 and body is not None and body["counts"]["unknown_trade"] == 1, output
    item = _items(app)[stranger]
    contributions = _count(app, Contribution)

    approved = _propose_and_approve(shop, item.id)
    number = approved["refund_out_refund_no"]
    assert approved["refund_amount_fen"] == 12300
    assert _settled(app, item.id) == "resolved"
    stray = _scalar(app, select(StrayRefund).where(StrayRefund.out_refund_no == number))
    assert (stray.channel, stray.out_trade_no, stray.amount_fen, stray.state) == (
        channel,
        stranger,
        12300,
        "succeeded",
    )
    at_channel = _sandbox_order(sandbox, channel, stranger)["refunds"]
    assert [(r["out_refund_no"], r["amount_fen"], r["status"]) for r in at_channel] == [
        (number, 12300, "SUCCESS")
    ]
    assert _count(app, Contribution) == contributions  # nothing of ours touched
    assert _count(app, Refund) == 0

    # The stray refund's bill row is ours: matched, no new unknown_trade.
    refund_day = _refund_day(sandbox, channel, stranger, number)
    before = _count(app, ReconciliationItem)
    code, again, output = reconcile(app, "--channel", channel, "--date", refund_day)
    assert code == 0 and again is not None, output
    assert _count(app, ReconciliationItem) == before, _items(app)


def test_rejected_proposal_moves_nothing(
    channel_shop: tuple[LiveServer, str], sandbox: Any
) -> None:
    shop, channel = channel_shop
    app = shop.app
    over = _paid_family(shop, sandbox, channel, "j", ["overcharge"])
    assert _wait(lambda: _get_status(app, over) == "paid")
    day = _bill_day(sandbox, channel, over)
    code, _, output = reconcile(app, "--channel", channel, "--date", day)
    assert code == 0, output
    item = _items(app)[over]
    maker, checker = _staff_token(app), _staff_token(app)
    proposed = _post(shop, f"{ITEMS}/{item.id}/resolve", maker,
                     {"action": "refund", "reason": "多收退回"})  # fmt: skip
    assert proposed.status_code == 200, proposed.text
    rejected = _post(shop, f"{ITEMS}/{item.id}/approve", checker,
                     {"approve": False, "note": "先与渠道核实"})  # fmt: skip
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["resolution"]) == ("open", None)
    assert rejected.json()["refund_out_refund_no"] is None
    assert _count(app, Refund) == 0 and _count(app, StrayRefund) == 0
    assert _sandbox_order(sandbox, channel, over)["refunds"] == []
    assert _history(app, item.id)[-2:] == ["resolve:refund", "reject"]
