"""End to end against the local sandbox: the API served over HTTP (real commits, both
backends), the real channel adapters, the sandbox's gateways, payer and notifier.

A resident orders, the sandbox "payer" pays, the sandbox posts its notification to the live
API, and the order, contributions and tax records are checked — plus idempotency, the one
open order, nothing owed, expiry, the late rule, healing a lost notification, a payment after
close refunded automatically, and a staff refund partial by item.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select, update

from api.auth.models import StaffAccount
from api.auth.tokens import issue_token
from api.db import utcnow
from api.households.models import Person
from api.payments.models import (
    ChannelNotification,
    Contribution,
    PaymentOrder,
    Refund,
)
from api.payments.outbox import OutboxMessage
from api.policy import load_policy
from tests.payments.factories import Member, make_account, make_household, token_for

POLICY = load_policy(2020)
MEDICAL = POLICY.medical.premium_fen
LATE_MEDICAL = POLICY.medical.late_premium_fen


@dataclass
class Family:
    household_id: int
    person_ids: list[int]
    token: str


@pytest.fixture
def today(shop: Any) -> Iterator[Callable[[str], None]]:
    """Pin the app's date (APP_TODAY); the concentrated payment phase by default."""
    app = shop.app
    saved = app.config.get("APP_TODAY", "")

    def pin(day: str) -> None:
        app.config["APP_TODAY"] = day

    pin("2019-11-05")
    yield pin
    app.config["APP_TODAY"] = saved


def _family(app: Flask, members: list[Member], *, channel: str = "wechat") -> Family:
    db = app.extensions["database"]
    with app.app_context():
        session = db.session()
        household = make_household(session, members)
        account = make_account(session, household, channel=channel)
        session.commit()
        family = Family(household.id, [p.id for p in household.members], token_for(app, account))
        db.session.remove()
    return family


def _staff_token(app: Flask, role: str = "finance") -> str:
    db = app.extensions["database"]
    with app.app_context():
        session = db.session()
        staff = StaffAccount(
            username=f"{role}-{time.monotonic_ns()}",
            display_name="财务",
            password_hash="x",
            role=role,
        )
        session.add(staff)
        session.commit()
        token = issue_token(
            secret_key=app.config["SETTINGS"].SECRET_KEY, kind="staff", account_id=staff.id
        )
        db.session.remove()
    return token


def _order(
    live: Any,
    family: Family,
    *,
    key: str,
    insurances: tuple[str, ...] = ("medical", "pension"),
    channel: str = "wechat",
    **extra: Any,
) -> requests.Response:
    return requests.post(
        live.url + "/api/v1/payments",
        json={
            "household_id": family.household_id,
            "year": 2020,
            "channel": channel,
            "insurances": list(insurances),
            **extra,
        },
        headers={"Authorization": f"Bearer {family.token}", "Idempotency-Key": key},
        timeout=30,
    )


def _get(live: Any, family: Family, out_trade_no: str) -> dict[str, Any]:
    r = requests.get(
        f"{live.url}/api/v1/payments/{out_trade_no}",
        headers={"Authorization": f"Bearer {family.token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _pay(sandbox: Any, channel: str, out_trade_no: str, faults: list[str] | None = None) -> None:
    r = requests.post(
        f"{sandbox.base_url}/sandbox/control/pay",
        json={"channel": channel, "out_trade_no": out_trade_no, "faults": faults or []},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def _sandbox_order(sandbox: Any, channel: str, out_trade_no: str) -> dict[str, Any]:
    r = requests.get(
        f"{sandbox.base_url}/sandbox/control/orders/{channel}/{out_trade_no}", timeout=30
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _wait(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _cli(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["payments", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _scalar(app: Flask, query: Any) -> Any:
    db = app.extensions["database"]
    with app.app_context():
        value = db.session().scalar(query)
        db.session.remove()
    return value


FAMILY = [
    Member(date(1975, 3, 9), pension_tier=300),
    Member(date(1978, 7, 1)),
    Member(date(2012, 1, 5)),
]


def test_wechat_order_is_paid_through_the_sandbox(shop, sandbox, today) -> None:
    family = _family(shop.app, FAMILY)
    r = _order(shop, family, key="k-1")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["amount_fen"] == 3 * MEDICAL + 30000
    assert order["status"] == "open"
    assert sorted(order["pay_params"]) == [
        "nonceStr",
        "package",
        "paySign",
        "signType",
        "timeStamp",
    ]
    assert order["pay_params"]["package"].startswith("prepay_id=")
    assert sorted((i["insurance"], i["amount_fen"]) for i in order["items"]) == sorted(
        [("medical", MEDICAL)] * 3 + [("pension", 30000)]
    )
    assert (
        _sandbox_order(sandbox, "wechat", order["out_trade_no"])["amount_fen"]
        == (order["amount_fen"])
    )

    _pay(sandbox, "wechat", order["out_trade_no"])
    paid = _wait(lambda: (o := _get(shop, family, order["out_trade_no"]))["status"] == "paid" and o)
    assert all(i["contribution"]["status"] == "paid" for i in paid["items"])
    assert {i["contribution"]["benefit_start"] for i in paid["items"]} == {"2020-01-01"}
    assert paid["pay_params"] is None
    assert (
        _scalar(
            shop.app,
            select(func.count())
            .select_from(OutboxMessage)
            .join(Contribution, Contribution.id == OutboxMessage.contribution_id)
            .where(Contribution.out_trade_no == order["out_trade_no"]),
        )
        == 4
    )
    # The household's premium page shows every item paid (the households hook).
    page = requests.get(
        f"{shop.url}/api/v1/households/{family.household_id}/premiums?year=2020",
        headers={"Authorization": f"Bearer {family.token}"},
        timeout=30,
    )
    assert page.status_code == 200, page.text
    statuses = [(m["medical"]["status"], m["pension"]["status"]) for m in page.json()["members"]]
    assert [medical for medical, _ in statuses] == ["paid", "paid", "paid"]
    assert statuses[0][1] == "paid"
    # Nothing is owed any more: a new order is refused before any gateway call.
    again = _order(shop, family, key="k-2")
    assert (again.status_code, again.json()["code"]) == (409, "nothing_owed")


def test_idempotency_key(shop, sandbox, today) -> None:
    family = _family(shop.app, FAMILY)
    first = _order(shop, family, key="same-key")
    second = _order(shop, family, key="same-key")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(requests.get(f"{sandbox.base_url}/sandbox/control/orders", timeout=10).json()) == 1
    other = _order(shop, family, key="same-key", insurances=("medical",))
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")
    missing = requests.post(
        shop.url + "/api/v1/payments",
        json={"household_id": family.household_id, "year": 2020, "channel": "wechat",
              "insurances": ["medical"]},
        headers={"Authorization": f"Bearer {family.token}"},
        timeout=30,
    )  # fmt: skip
    assert (missing.status_code, missing.json()["code"]) == (422, "idempotency_key_required")


def test_household_wide_medical_and_one_open_order(shop, sandbox, today) -> None:
    family = _family(shop.app, FAMILY)
    first = _order(shop, family, key="a", insurances=("medical",)).json()
    # Medical covers every due member: the three of them, never fewer.
    assert sorted(i["person_id"] for i in first["items"]) == sorted(family.person_ids)
    second = _order(shop, family, key="b").json()
    assert second["status"] == "open" and second["out_trade_no"] != first["out_trade_no"]
    assert _get(shop, family, first["out_trade_no"])["status"] == "closed"
    assert _sandbox_order(sandbox, "wechat", first["out_trade_no"])["state"] == "CLOSED"
    # The closed order cannot be paid at the gateway any more.
    r = requests.post(
        f"{sandbox.base_url}/sandbox/control/pay",
        json={"channel": "wechat", "out_trade_no": first["out_trade_no"]},
        timeout=10,
    )
    assert r.status_code == 409


def test_a_refused_request_leaves_the_open_order_and_the_same_request_gets_it_back(
    shop, sandbox, today
) -> None:
    """Issue 10, defect 1: a request for nothing owed used to close the family's open order
    first (`superseded`), so paying it gave ORDERCLOSED. Now nothing changes unless a new order
    is made, and asking again for exactly the open order answers with that order."""
    family = _family(shop.app, FAMILY)
    medical = _order(shop, family, key="m", insurances=("medical",)).json()
    _pay(sandbox, "wechat", medical["out_trade_no"])
    _wait(lambda: _get(shop, family, medical["out_trade_no"])["status"] == "paid")

    pension = _order(shop, family, key="p1", insurances=("pension",))
    assert pension.status_code == 201, pension.text
    refused = _order(shop, family, key="m2", insurances=("medical",))
    assert (refused.status_code, refused.json()["code"]) == (409, "nothing_owed")
    out_trade_no = pension.json()["out_trade_no"]
    assert _get(shop, family, out_trade_no)["status"] == "open"
    assert _sandbox_order(sandbox, "wechat", out_trade_no)["state"] != "CLOSED"

    again = _order(shop, family, key="p2", insurances=("pension",))
    assert again.status_code == 201, again.text
    assert again.json()["out_trade_no"] == out_trade_no
    assert again.json()["pay_params"] == pension.json()["pay_params"]
    assert len(requests.get(f"{sandbox.base_url}/sandbox/control/orders", timeout=10).json()) == 2

    _pay(sandbox, "wechat", out_trade_no)
    _wait(lambda: _get(shop, family, out_trade_no)["status"] == "paid")


def test_nothing_owed_and_collection_closed_refused_before_the_gateway(
    shop, sandbox, today
) -> None:
    covered = _family(
        shop.app,
        [
            Member(date(1950, 1, 1), categories=("dibao",)),
            Member(date(1990, 1, 1), categories=("tekun",)),
        ],
    )
    r = _order(shop, covered, key="x")
    assert (r.status_code, r.json()["code"]) == (409, "nothing_owed")
    today("2019-10-10")  # preparation phase: no collection yet
    family = _family(shop.app, FAMILY)
    r = _order(shop, family, key="y")
    assert (r.status_code, r.json()["code"]) == (409, "collection_closed")
    assert requests.get(f"{sandbox.base_url}/sandbox/control/orders", timeout=10).json() == []


def test_expired_orders_are_closed_at_the_channel(shop, sandbox, today) -> None:
    family = _family(shop.app, FAMILY)
    order = _order(shop, family, key="e").json()
    assert order["expires_at"]
    db = shop.app.extensions["database"]
    with shop.app.app_context():
        session = db.session()
        session.execute(
            update(PaymentOrder)
            .where(PaymentOrder.out_trade_no == order["out_trade_no"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
        db.session.remove()
    assert '"closed": 1' in _cli(shop.app, "expire")
    assert _get(shop, family, order["out_trade_no"])["status"] == "expired"
    assert _sandbox_order(sandbox, "wechat", order["out_trade_no"])["state"] == "CLOSED"


def test_late_payment_owes_the_full_premium_and_starts_30_days_later(shop, sandbox, today) -> None:
    today("2019-12-25")
    family = _family(shop.app, FAMILY)
    order = _order(shop, family, key="late").json()
    medical = [i for i in order["items"] if i["insurance"] == "medical"]
    assert {i["amount_fen"] for i in medical} == {LATE_MEDICAL}
    assert all(i["late"] for i in medical)
    _pay(sandbox, "wechat", order["out_trade_no"])
    paid = _wait(lambda: (o := _get(shop, family, order["out_trade_no"]))["status"] == "paid" and o)
    starts = {i["insurance"]: i["contribution"]["benefit_start"] for i in paid["items"]}
    assert starts["medical"] == "2020-01-24"  # paid 2019-12-25 + 30 days
    assert starts["pension"] == "2020-01-01"  # the 2020 policy has no late rule for pension


def test_a_lost_notification_is_healed_by_reconcile_open_exactly_once(shop, sandbox, today) -> None:
    family = _family(shop.app, FAMILY)
    order = _order(shop, family, key="h").json()
    _pay(sandbox, "wechat", order["out_trade_no"], faults=["drop"])
    sandbox.sandbox.notifier.wait_idle(5)
    assert _get(shop, family, order["out_trade_no"])["status"] == "open"
    assert '"paid": 1' in _cli(shop.app, "reconcile-open", "--older-than-minutes", "0")
    assert '"paid"' not in _cli(shop.app, "reconcile-open", "--older-than-minutes", "0")
    assert _get(shop, family, order["out_trade_no"])["status"] == "paid"
    count = select(func.count()).select_from(Contribution)
    assert _scalar(shop.app, count.where(Contribution.out_trade_no == order["out_trade_no"])) == 4
    assert _scalar(shop.app, select(func.count()).select_from(ChannelNotification)) == 0


def test_payment_after_close_is_refunded_automatically(shop, sandbox, today) -> None:
    """An Alipay QR order is closed (superseded) before anyone scanned it — Alipay says "trade
    does not exist" — and then the poster's QR code is scanned and paid anyway."""
    family = _family(shop.app, FAMILY, channel="alipay")
    first = _order(shop, family, key="qr-1", channel="alipay", scene="qr").json()
    assert set(first["pay_params"]) == {"qr_code"}
    # Another scene (the same request would be answered with the open QR order itself).
    second = _order(shop, family, key="qr-2", channel="alipay", scene="wap").json()
    assert _get(shop, family, first["out_trade_no"])["status"] == "closed"

    _pay(sandbox, "alipay", first["out_trade_no"])
    late = _wait(
        lambda: (
            (o := _get(shop, family, first["out_trade_no"]))["status"] == "paid_after_close" and o
        )
    )
    assert all(i["contribution"] is None for i in late["items"])
    assert [(r["state"], r["reason"], r["amount_fen"]) for r in late["refunds"]] == [
        ("requested", "paid_after_close", first["amount_fen"])
    ]
    _cli(shop.app, "process-refunds")
    done = _get(shop, family, first["out_trade_no"])
    assert done["status"] == "refunded"
    assert done["refunds"][0]["state"] == "succeeded"
    assert (
        _sandbox_order(sandbox, "alipay", first["out_trade_no"])["refunds"][0]["amount_fen"]
        == (first["amount_fen"])
    )
    # The household still owes its premiums, through the newer order.
    assert _get(shop, family, second["out_trade_no"])["status"] == "open"


def test_deceased_refund_needs_a_recorded_death(shop, sandbox, today) -> None:
    """Issue 10, defect 9: reason `deceased` is refused for a person with no date of death."""
    family = _family(shop.app, FAMILY)
    order = _order(shop, family, key="dead").json()
    _pay(sandbox, "wechat", order["out_trade_no"])
    _wait(lambda: _get(shop, family, order["out_trade_no"])["status"] == "paid")
    staff = _staff_token(shop.app)
    adult = family.person_ids[0]

    def refund() -> requests.Response:
        return requests.post(
            shop.url + "/api/v1/finance/refunds",
            json={"out_trade_no": order["out_trade_no"], "reason": "deceased",
                  "items": [{"person_id": adult, "insurance": "pension"}]},
            headers={"Authorization": f"Bearer {staff}"},
            timeout=30,
        )  # fmt: skip

    refused = refund()
    assert (refused.status_code, refused.json()["code"]) == (422, "no_death_record")
    assert _scalar(shop.app, select(func.count()).select_from(Refund)) == 0
    with shop.app.app_context():
        session = shop.app.extensions["database"].session()
        session.execute(
            update(Person).where(Person.id == adult).values(deceased_on=date(2019, 10, 1))
        )
        session.commit()
    accepted = refund()
    assert accepted.status_code == 201, accepted.text


def test_staff_refund_partial_by_item_reverses_contributions(shop, sandbox, today) -> None:
    family = _family(shop.app, FAMILY)
    order = _order(shop, family, key="r").json()
    _pay(sandbox, "wechat", order["out_trade_no"])
    _wait(lambda: _get(shop, family, order["out_trade_no"])["status"] == "paid")
    staff = _staff_token(shop.app)
    adult = family.person_ids[0]
    r = requests.post(
        shop.url + "/api/v1/finance/refunds",
        json={
            "out_trade_no": order["out_trade_no"],
            "items": [{"person_id": adult, "insurance": "pension"}],
            "reason": "employee_insured",
            "note": "已参加职工养老保险",
        },
        headers={"Authorization": f"Bearer {staff}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    # WeChat accepts the refund (processing), settles it a moment later and notifies
    # /notify/wechat/refund; with the sandbox's squeezed clock that may already have happened.
    assert r.json()["amount_fen"] == 30000
    assert r.json()["state"] in ("processing", "succeeded")
    done = _wait(
        lambda: (
            (o := _get(shop, family, order["out_trade_no"]))["status"] == "partially_refunded" and o
        )
    )
    assert done["refunds"][0]["state"] == "succeeded"
    by_item = {(i["person_id"], i["insurance"]): i["contribution"]["status"] for i in done["items"]}
    assert by_item[(adult, "pension")] == "reversed"
    assert list(by_item.values()).count("paid") == 3
    reversed_records = (
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.event == "contribution.reversed")
    )
    assert _scalar(shop.app, reversed_records) == 1
    # The same item cannot be refunded twice; an unpaid one is refused too.
    again = requests.post(
        shop.url + "/api/v1/finance/refunds",
        json={"out_trade_no": order["out_trade_no"], "reason": "other",
              "items": [{"person_id": adult, "insurance": "pension"}]},
        headers={"Authorization": f"Bearer {staff}"},
        timeout=30,
    )  # fmt: skip
    assert (again.status_code, again.json()["code"]) == (422, "invalid_refund_items")
    refund_log = (
        select(func.count())
        .select_from(ChannelNotification)
        .where(
            ChannelNotification.out_refund_no.is_not(None),
            ChannelNotification.outcome == "applied",
        )
    )
    assert _scalar(shop.app, refund_log) == 1
    assert _scalar(shop.app, select(Refund.reason)) == "employee_insured"


def test_twenty_concurrent_sandbox_copies_on_postgresql(pg_shop, sandbox) -> None:
    app = pg_shop.app
    saved = app.config.get("APP_TODAY", "")
    app.config["APP_TODAY"] = "2019-11-05"
    try:
        family = _family(app, FAMILY)
        order = _order(pg_shop, family, key="c").json()
        _pay(sandbox, "wechat", order["out_trade_no"], faults=["copies:20"])
        sandbox.sandbox.notifier.wait_idle(30)
        outcomes = select(ChannelNotification.outcome, func.count()).group_by(
            ChannelNotification.outcome
        )
        db = app.extensions["database"]
        with app.app_context():
            counted = dict(db.session().execute(outcomes).all())
            db.session.remove()
        assert counted == {"applied": 1, "duplicate": 19}
        assert _get(pg_shop, family, order["out_trade_no"])["status"] == "paid"
        contributions = select(func.count()).select_from(Contribution)
        assert _scalar(app, contributions) == 4
        assert _scalar(app, select(func.count()).select_from(OutboxMessage)) == 4
        attempts = requests.get(
            f"{sandbox.base_url}/sandbox/wechat/notifications", timeout=10
        ).json()
        assert len(attempts) == 20  # each copy was answered with success: no retries
    finally:
        app.config["APP_TODAY"] = saved


def test_alipay_miniprogram_order_is_paid_through_the_sandbox(shop, sandbox, today) -> None:
    family = _family(shop.app, FAMILY, channel="alipay")
    order = _order(shop, family, key="ali", channel="alipay", insurances=("medical",)).json()
    assert order["scene"] == "miniprogram" and set(order["pay_params"]) == {"trade_no"}
    assert order["amount_fen"] == 3 * MEDICAL
    _pay(sandbox, "alipay", order["out_trade_no"])
    paid = _wait(lambda: (o := _get(shop, family, order["out_trade_no"]))["status"] == "paid" and o)
    assert [i["contribution"]["status"] for i in paid["items"]] == ["paid"] * 3
    sources = select(Contribution.source).where(Contribution.out_trade_no == order["out_trade_no"])
    assert _scalar(shop.app, sources) == "alipay"
