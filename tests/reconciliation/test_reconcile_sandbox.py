"""Reconciliation over the real sandbox and its bills: WeChat v2, v3 and Alipay, both backends.

Households pay through the sandbox; bill faults make the sandbox's bill disagree with what
happened in known ways; `flask reconcile run --json` must find each difference under its
outcome name and nothing else, heal the dropped notification through the notification path,
create nothing on a re-run, answer exit 1 while the bill is not ready (and succeed on the
retry), and write nothing for a malformed bill.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import func, select

from api.clock import BEIJING
from api.payments.models import Contribution, OrderEvent, PaymentOrder
from api.reconciliation.models import (
    OUTCOMES,
    ReconciliationItem,
    ReconciliationItemEvent,
    ReconciliationRun,
)
from tests.payments.conftest import LiveServer
from tests.payments.factories import Member
from tests.payments.test_payments_flows import (
    _family,
    _get,
    _order,
    _pay,
    _sandbox_order,
    _scalar,
    _staff_token,
    _wait,
)

ONE = [Member(date(1975, 3, 9))]


def reconcile(app: Flask, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    result = app.test_cli_runner().invoke(args=["reconcile", "run", *args, "--json"])
    line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    body = json.loads(line) if line.startswith("{") else None
    return result.exit_code, body, result.output + repr(result.exception)


def _faults(sandbox: Any, faults: list[str], out_trade_no: str | None = None) -> None:
    body: dict[str, Any] = {"faults": faults}
    if out_trade_no:
        body["out_trade_no"] = out_trade_no
    r = requests.post(f"{sandbox.base_url}/sandbox/control/faults", json=body, timeout=10)
    assert r.status_code == 200, r.text


PERSONS: dict[str, int] = {}


def _paid_family(
    shop: LiveServer, sandbox: Any, channel: str, key: str, faults: list[str] | None = None
) -> str:
    family = _family(shop.app, ONE, channel=channel)
    order = _order(shop, family, key=key, insurances=("medical",), channel=channel).json()
    _pay(sandbox, channel, order["out_trade_no"], faults)
    if not faults:
        _wait(lambda: _get(shop, family, order["out_trade_no"])["status"] == "paid")
    PERSONS[order["out_trade_no"]] = family.person_ids[0]
    return str(order["out_trade_no"])


def _bill_day(sandbox: Any, channel: str, out_trade_no: str) -> str:
    paid_at = datetime.fromisoformat(_sandbox_order(sandbox, channel, out_trade_no)["paid_at"])
    return paid_at.astimezone(BEIJING).date().isoformat()


def _count(app: Flask, model: Any, *where: Any) -> int:
    return int(_scalar(app, select(func.count()).select_from(model).where(*where)) or 0)


def _items(app: Flask) -> dict[str, ReconciliationItem]:
    db = app.extensions["database"]
    with app.app_context():
        rows = list(db.session().scalars(select(ReconciliationItem)))
        db.session.remove()
    return {i.key: i for i in rows}


def test_each_bill_fault_is_found_healed_and_a_rerun_creates_nothing(
    channel_shop: tuple[LiveServer, str], sandbox: Any, tmp_path: Path
) -> None:
    shop, channel = channel_shop
    app = shop.app
    matched = _paid_family(shop, sandbox, channel, "m")
    dropped = _paid_family(shop, sandbox, channel, "d", ["drop"])  # never notified, never queried
    omitted = _paid_family(shop, sandbox, channel, "o")
    changed = _paid_family(shop, sandbox, channel, "c")
    refunded = _paid_family(shop, sandbox, channel, "r")
    r = requests.post(f"{sandbox.base_url}/sandbox/control/unknown-trade",
                      json={"channel": channel, "amount_fen": 12300}, timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    stranger = r.json()["order"]["out_trade_no"]
    staff = _staff_token(app)
    refund = requests.post(
        shop.url + "/api/v1/finance/refunds",
        json={
            "out_trade_no": refunded,
            "items": [{"person_id": PERSONS[refunded], "insurance": "medical"}],
            "reason": "duplicate",
            "note": "现金已缴",
        },
        headers={"Authorization": f"Bearer {staff}"},
        timeout=30,
    )
    assert refund.status_code == 201, refund.text
    out_refund_no = refund.json()["out_refund_no"]
    _faults(sandbox, ["bill_omit"], omitted)
    _faults(sandbox, ["bill_amount"], changed)
    _faults(sandbox, ["bill_omit_refund"], refunded)
    day = _bill_day(sandbox, channel, matched)
    assert _get_status(app, dropped) == "open"

    # The bill is not ready yet: exit 1, a clear message, nothing stored; the retry succeeds.
    _faults(sandbox, ["bill_not_ready"])
    code, body, output = reconcile(app, "--channel", channel, "--date", day)
    assert code == 1, output
    assert body is not None and body["error"] == "bill_not_ready"
    assert _count(app, ReconciliationRun) == 0
    _faults(sandbox, [])

    # A malformed bill: a clear error and nothing half-written (no run, no item, no heal).
    bad = tmp_path / "bill.bin"
    bad.write_bytes(b"\xff\xfe not a bill at all")
    code, body, output = reconcile(app, "--channel", channel, "--date", day, "--file", str(bad))
    assert code == 1 and body is not None and body["error"] == "malformed_bill", output
    assert _count(app, ReconciliationRun) == 0 and _count(app, ReconciliationItem) == 0
    assert _get_status(app, dropped) == "open"

    code, body, output = reconcile(app, "--channel", channel, "--date", day)
    assert code == 0, output
    assert body is not None
    assert (body["channel"], body["bill_date"], body["status"]) == (channel, day, "completed")
    expected = dict.fromkeys(OUTCOMES, 0)
    expected.update(
        matched=2,  # `matched` and the refunded order's payment row
        missing_ours=1,
        unknown_trade=1,
        missing_channel=1,
        amount_mismatch=1,
        refund_missing_channel=1,
    )
    assert body["counts"] == expected
    items = _items(app)
    assert set(items) == {dropped, stranger, omitted, changed, out_refund_no}
    assert items[dropped].type == "missing_ours"
    assert (items[dropped].heal_result, items[dropped].status) == ("healed", "resolved")
    assert _get_status(app, dropped) == "paid"  # healed through the notification path
    assert items[stranger].type == "unknown_trade" and items[stranger].status == "open"
    assert items[omitted].type == "missing_channel"
    assert items[omitted].status == "recheck"  # waits for the next day's bill
    assert (
        items[changed].type,
        items[changed].bill_amount_fen - items[changed].our_amount_fen,
    ) == (
        "amount_mismatch",
        100,
    )
    assert items[out_refund_no].type == "refund_missing_channel"
    # Totals: the bill's payments (with the +1 yuan and the stranger) and ours.
    ours = _scalar(app, select(func.sum(PaymentOrder.amount_fen)).where(
        PaymentOrder.out_trade_no.in_([matched, dropped, omitted, changed, refunded])))  # fmt: skip
    assert body["our_total_fen"] == ours
    assert body["bill_total_fen"] == ours - items[omitted].our_amount_fen + 100 + 12300
    run = _one_run(app)
    assert run.bill_size == len(run.bill_raw or b"") > 0 and len(run.bill_sha256 or "") == 64

    # Re-running the day creates nothing and keeps every count.
    events = _count(app, ReconciliationItemEvent)
    paid_events = _count(app, OrderEvent, OrderEvent.to_state == "paid")
    contributions = _count(app, Contribution)
    code, again, output = reconcile(app, "--channel", channel, "--date", day)
    assert code == 0, output
    assert again is not None and again["counts"] == expected and again["new_items"] == 0
    assert _count(app, ReconciliationRun) == 1
    assert _count(app, ReconciliationItem) == 5
    assert _count(app, ReconciliationItemEvent) == events
    assert _count(app, OrderEvent, OrderEvent.to_state == "paid") == paid_events
    assert _count(app, Contribution) == contributions


def _get_status(app: Flask, out_trade_no: str) -> str:
    return str(
        _scalar(app, select(PaymentOrder.status).where(PaymentOrder.out_trade_no == out_trade_no))
    )


def _one_run(app: Flask) -> ReconciliationRun:
    db = app.extensions["database"]
    with app.app_context():
        run = db.session().scalars(select(ReconciliationRun)).one()
        db.session.expunge(run)
        db.session.remove()
    return run


def _staff_refund(shop: LiveServer, out_trade_no: str) -> str:
    """Finance refunds the order's medical item (sent to the channel at once)."""
    r = requests.post(
        shop.url + "/api/v1/finance/refunds",
        json={
            "out_trade_no": out_trade_no,
            "items": [{"person_id": PERSONS[out_trade_no], "insurance": "medical"}],
            "reason": "duplicate",
            "note": "现金已缴",
        },
        headers={"Authorization": f"Bearer {_staff_token(shop.app)}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["out_refund_no"])


def test_refund_and_status_faults_are_found_under_their_names(
    channel_shop: tuple[LiveServer, str], sandbox: Any
) -> None:
    """The refund-side outcomes and `status_mismatch`, each from the bill fault that makes it.

    Alipay's bill has no payment status (its rows are 交易 or 退款), so `bill_revoked` changes
    nothing there and the order matches; the matching tests cover Alipay's refund-side
    `status_mismatch` (a refund we hold as failed that the bill shows).
    """
    shop, channel = channel_shop
    app = shop.app
    higher = _paid_family(shop, sandbox, channel, "h")
    outside = _paid_family(shop, sandbox, channel, "x")
    revoked = _paid_family(shop, sandbox, channel, "v")
    higher_refund = _staff_refund(shop, higher)
    _faults(sandbox, ["bill_refund_amount"], higher)
    _faults(sandbox, ["bill_extra_refund"], outside)
    _faults(sandbox, ["bill_revoked"], revoked)
    day = _bill_day(sandbox, channel, higher)

    code, body, output = reconcile(app, "--channel", channel, "--date", day)
    assert code == 0, output
    assert body is not None
    expected = dict.fromkeys(OUTCOMES, 0)
    if channel == "wechat":
        expected.update(matched=2, status_mismatch=1)
    else:
        expected.update(matched=3)
    expected.update(refund_amount_mismatch=1, refund_missing_ours=1)
    assert body["counts"] == expected
    items = _items(app)
    strange = f"OUTSIDE{outside}"[:64]
    keys = {higher_refund, strange} | ({revoked} if channel == "wechat" else set())
    assert set(items) == keys
    mismatch = items[higher_refund]
    assert mismatch.type == "refund_amount_mismatch"
    assert mismatch.bill_amount_fen is not None and mismatch.our_amount_fen is not None
    assert mismatch.bill_amount_fen - mismatch.our_amount_fen == 100
    assert (items[strange].type, items[strange].bill_amount_fen) == ("refund_missing_ours", 100)
    if channel == "wechat":
        assert (items[revoked].type, items[revoked].bill_status) == ("status_mismatch", "REVOKED")
    # Nothing in our books moved: the orders stay paid, the extra refund is only an item.
    for out_trade_no in (outside, revoked):
        assert _get_status(app, out_trade_no) == "paid"
    code, again, output = reconcile(app, "--channel", channel, "--date", day)
    assert code == 0 and again is not None and again["new_items"] == 0, output
    assert again["counts"] == expected
