"""Each sandbox fault, end to end against the live API (issue 4, "Tests that must exist"):
a resident of the demo district logs in, binds, chooses a tier, orders and pays through the
sandbox with the fault, and the API's state afterwards is checked exactly — order status,
contributions, the callback log's outcomes and reasons, refunds. Both database backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import select

from api.payments.models import ChannelNotification, Contribution, PaymentOrder, Refund
from sandbox.scenario import journey
from sandbox.scenario.api_client import ApiClient, ApiError
from tests.sandbox.e2e.conftest import FINANCE, District

pytestmark = pytest.mark.slow


@dataclass
class Paying:
    resident: journey.Resident
    order: dict[str, Any]

    @property
    def no(self) -> str:
        return str(self.order["out_trade_no"])

    def status(self) -> str:
        return str(self.resident.api.order(self.no)["status"])


def _start(district: District, channel: str = "wechat", **order: Any) -> Paying:
    """A resident of a two-or-more-person household orders medical + a 300 pension tier."""
    household = district.household(lambda h: len(h.living()) >= 2)
    resident = journey.enter(district.api_url, household, channel=channel)
    journey.choose_tiers(resident, 300)
    placed = journey.place_order(resident, insurances=["medical", "pension"], **order)
    assert placed["status"] == "open"
    return Paying(resident, placed)


def _pay(district: District, paying: Paying, *faults: str) -> None:
    journey.pay_at_gateway(district.control, paying.order, faults)


def _settle(district: District) -> None:
    assert district.sandbox.sandbox.notifier.wait_idle(20)


def _outcomes(district: District) -> list[tuple[str | None, str, str | None]]:
    """The callback log as (kind, outcome, reason), in arrival order."""
    rows = district.rows(
        select(
            ChannelNotification.kind, ChannelNotification.outcome, ChannelNotification.reason
        ).order_by(ChannelNotification.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _contributions(district: District, paying: Paying) -> int:
    return district.count(
        Contribution, Contribution.out_trade_no == paying.no, Contribution.status == "paid"
    )


def _reconcile(district: District) -> str:
    return district.cli("payments", "reconcile-open", "--older-than-minutes", "0")


def _items(paying: Paying) -> int:
    return len(paying.order["items"])


def test_duplicate_notice_answers_success_and_changes_nothing(district: District) -> None:
    paying = _start(district)
    _pay(district, paying, "duplicate")
    _settle(district)
    assert paying.status() == "paid"
    assert _outcomes(district) == [("payment", "applied", None), ("payment", "duplicate", None)]
    assert _contributions(district, paying) == _items(paying)
    attempts = journey.sandbox_attempts(district.control, "wechat", paying.no)
    assert [a["accepted"] for a in attempts] == [True, True]


def test_five_concurrent_copies_apply_once(district: District) -> None:
    paying = _start(district)
    _pay(district, paying, "copies:5")
    _settle(district)
    assert paying.status() == "paid"
    outcomes = _outcomes(district)
    assert sorted(outcomes, key=str) == sorted(
        [("payment", "applied", None)] + [("payment", "duplicate", None)] * 4, key=str
    )
    assert _contributions(district, paying) == _items(paying)
    assert all(
        a["accepted"] for a in journey.sandbox_attempts(district.control, "wechat", paying.no)
    )


def test_delayed_notice_after_healing_is_a_duplicate(district: District) -> None:
    """The notice comes 2 s late; reconcile-open (right away) asks the gateway and applies
    the payment first, so the late notice must change nothing."""
    paying = _start(district)
    _pay(district, paying, "delay:2")
    healed = '"paid": 1' in _reconcile(district)
    _settle(district)
    assert paying.status() == "paid"
    assert _contributions(district, paying) == _items(paying)
    expected = "duplicate" if healed else "applied"
    assert _outcomes(district) == [("payment", expected, None)]


def test_refund_notice_before_payment_notice(district: District) -> None:
    """out_of_order: the payment notice is held back until the order's refund notice went out.
    The lost payment is healed by reconcile-open, finance refunds one item, WeChat notifies the
    refund — and only then the old payment notice arrives: a duplicate, nothing re-booked."""
    paying = _start(district)
    _pay(district, paying, "out_of_order")
    _settle(district)
    assert paying.status() == "open" and _outcomes(district) == []
    assert '"paid": 1' in _reconcile(district)
    staff = ApiClient(district.api_url)
    staff.staff_login(*FINANCE)
    pension = next(i for i in paying.order["items"] if i["insurance"] == "pension")
    refunded = staff._json(
        "POST",
        "/api/v1/finance/refunds",
        body={
            "out_trade_no": paying.no,
            "items": [{"person_id": pension["person_id"], "insurance": "pension"}],
            "reason": "employee_insured",
        },
    )
    assert refunded["amount_fen"] == pension["amount_fen"]
    journey.wait_for(
        lambda: len(journey.sandbox_attempts(district.control, "wechat", paying.no)) >= 2,
        timeout=20,
    )
    _settle(district)
    attempts = journey.sandbox_attempts(district.control, "wechat", paying.no)
    assert [a["kind"] for a in attempts] == ["refund", "payment"]
    assert _outcomes(district) == [
        ("refund", "applied", "refund_succeeded"),
        ("payment", "duplicate", None),
    ]
    order = paying.resident.api.order(paying.no)
    assert (order["status"], order["refunded_fen"]) == ("partially_refunded", pension["amount_fen"])
    assert _contributions(district, paying) == _items(paying) - 1
    assert district.count(Contribution, Contribution.status == "reversed") == 1


def test_dropped_notice_is_healed_by_reconcile_open_exactly_once(district: District) -> None:
    paying = _start(district, channel="alipay")
    _pay(district, paying, "drop")
    _settle(district)
    assert paying.status() == "open"
    assert '"paid": 1' in _reconcile(district)
    assert '"paid"' not in _reconcile(district)
    assert paying.status() == "paid"
    assert _contributions(district, paying) == _items(paying)
    assert _outcomes(district) == []  # nothing ever arrived: the channel's query told
    events = journey.sandbox_attempts(district.control, "alipay", paying.no)
    assert [e["event"] for e in events] == ["dropped"]


@pytest.mark.parametrize(
    ("channel", "fault", "reason"),
    [
        ("wechat", "forge_signature", "bad_signature"),
        ("alipay", "forge_signature", "bad_signature"),
        ("wechat", "wrong_appid", "wrong_app_id"),
        ("alipay", "wrong_appid", "wrong_app_id"),
        ("wechat", "wrong_mch", "wrong_merchant"),
        ("alipay", "wrong_mch", "wrong_merchant"),
    ],
)
def test_forged_or_misaddressed_notices_are_refused_every_time(
    district: District, channel: str, fault: str, reason: str
) -> None:
    """Every attempt of the vendor's retry schedule is refused with the protocol's failure
    reply and logged with its reason; the order stays open until the gateway is asked."""
    paying = _start(district, channel=channel)
    _pay(district, paying, fault)
    _settle(district)
    attempts = journey.sandbox_attempts(district.control, channel, paying.no)
    assert len(attempts) == (16 if channel == "wechat" else 8)  # the whole retry schedule
    assert not any(a["accepted"] for a in attempts)
    assert _outcomes(district) == [(None, "rejected", reason)] * len(attempts)
    signature_valid = district.rows(select(ChannelNotification.signature_valid).distinct())
    assert signature_valid == [(False if reason == "bad_signature" else None,)]
    assert paying.status() == "open"
    assert _contributions(district, paying) == 0
    assert '"paid": 1' in _reconcile(district)  # the money is real: the query heals it
    assert _contributions(district, paying) == _items(paying)


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_amount_changed_is_refused_as_a_mismatch(district: District, channel: str) -> None:
    paying = _start(district, channel=channel)
    _pay(district, paying, "amount_changed")
    _settle(district)
    rows = district.rows(
        select(
            ChannelNotification.outcome,
            ChannelNotification.reason,
            ChannelNotification.out_trade_no,
            ChannelNotification.amount_fen,
        ).distinct()
    )
    assert rows == [("rejected", "amount_mismatch", paying.no, paying.order["amount_fen"] + 1)]
    assert paying.status() == "open"
    assert _contributions(district, paying) == 0
    assert '"paid": 1' in _reconcile(district)
    assert paying.status() == "paid"
    assert _contributions(district, paying) == _items(paying)


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_prepay_5xx_answers_502_and_leaves_no_open_order(district: District, channel: str) -> None:
    household = district.household(lambda h: len(h.living()) >= 2)
    resident = journey.enter(district.api_url, household, channel=channel)
    with pytest.raises(ApiError) as refused:
        journey.with_global_faults(
            district.control,
            ["prepay_5xx"],
            lambda: journey.place_order(resident, insurances=["medical"]),
        )
    assert (refused.value.status, refused.value.code) == (502, "upstream_error")
    statuses = district.rows(select(PaymentOrder.status, PaymentOrder.out_trade_no))
    assert [s for s, _ in statuses] == ["failed"]
    gateway = requests.get(
        f"{district.sandbox.base_url}/sandbox/control/orders/{channel}/{statuses[0][1]}",
        timeout=10,
    )
    assert gateway.status_code == 404  # the gateway created nothing
    # The failed order blocks nothing: once the gateway is back, the household can pay.
    again = journey.place_order(resident, insurances=["medical"])
    assert again["status"] == "open"
    assert district.count(PaymentOrder, PaymentOrder.status.in_(("created", "open"))) == 1


def test_query_5xx_reconcile_survives_and_retries(district: District) -> None:
    paying = _start(district)
    journey.set_order_faults(district.control, paying.no, ["query_5xx"])
    _pay(district, paying, "drop")
    _settle(district)
    assert '"error": 1' in _reconcile(district)  # survives the gateway's 500
    assert paying.status() == "open"
    district.control.post("/sandbox/control/faults", {"clear": True, "out_trade_no": paying.no})
    assert '"paid": 1' in _reconcile(district)
    assert paying.status() == "paid"
    assert _contributions(district, paying) == _items(paying)
    assert _outcomes(district) == []


def test_two_members_two_channels_the_second_payment_is_refunded(district: District) -> None:
    """One member shows an Alipay QR code, another orders in WeChat (closing the QR order),
    both pay: the QR payment is paid_after_close, refunded in full by process-refunds."""
    household = district.household(lambda h: len(h.living()) >= 2)
    shower = journey.enter(district.api_url, household, channel="alipay", who="b", member=1)
    payer = journey.enter(district.api_url, household, channel="wechat", who="a", member=0)
    qr = Paying(shower, journey.place_order(shower, insurances=["medical"], scene="qr"))
    wx = Paying(payer, journey.place_order(payer, insurances=["medical"]))
    assert qr.status() == "closed"
    _pay(district, wx)
    _pay(district, qr)
    _settle(district)
    assert (wx.status(), qr.status()) == ("paid", "paid_after_close")
    assert district.count(Refund, Refund.state == "requested") == 1
    district.cli("payments", "process-refunds")
    _settle(district)
    order = shower.api.order(qr.no)
    assert (order["status"], order["refunded_fen"]) == ("refunded", order["amount_fen"])
    assert [(r["reason"], r["state"]) for r in order["refunds"]] == [
        ("paid_after_close", "succeeded")
    ]
    assert _contributions(district, wx) == _items(wx)
    assert _contributions(district, qr) == 0
    gateway = district.control.get(f"/sandbox/control/orders/alipay/{qr.no}")
    assert sum(r["amount_fen"] for r in gateway["refunds"]) == order["amount_fen"]
