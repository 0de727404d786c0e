"""Healing refunds whose result notification never arrived (`payments reconcile-refunds`).

End to end against the local sandbox, for WeChat Pay v2, v3 and Alipay, with the API served
over HTTP on both backends (real commits): a staff refund is accepted by the gateway and held
there (`refund_pending`), its notification is lost (`drop_refund`), and the healer queries the
gateway and books the answer through the refund notification's own path — exactly once, even
when the late notification arrives afterwards or inside the healer's query.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select, update

from api.audit.models import AuditEvent
from api.db import utcnow
from api.payments import healing
from api.payments.channels import ChannelError, ChannelRefund, get_channel
from api.payments.models import ChannelNotification, Contribution, Refund
from api.payments.outbox import OutboxMessage
from tests.payments.conftest import LiveServer, use_settings
from tests.payments.test_payments_flows import (
    FAMILY,
    MEDICAL,
    Family,
    _cli,
    _family,
    _get,
    _order,
    _pay,
    _scalar,
    _staff_token,
    _wait,
)

APIS = ["v2", "v3", "alipay"]


@dataclasses.dataclass
class Paid:
    """A paid order of a family, on one gateway, with the sandbox faults it was given."""

    family: Family
    out_trade_no: str
    channel: str  # wechat | alipay


@pytest.fixture(params=APIS)
def gateway(request: pytest.FixtureRequest, shop: LiveServer) -> Iterator[str]:
    """The API under test: WeChat v2, WeChat v3 or Alipay (`shop` restores the settings)."""
    app = shop.app
    saved = app.config.get("APP_TODAY", "")
    app.config["APP_TODAY"] = "2019-11-05"
    if request.param == "v3":
        use_settings(app, WECHAT_PAY_VERSION="v3")
    yield request.param
    app.config["APP_TODAY"] = saved


def _control(sandbox: Any, path: str, payload: dict[str, Any]) -> Any:
    r = requests.post(f"{sandbox.base_url}/sandbox/control/{path}", json=payload, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _paid(shop: LiveServer, sandbox: Any, gateway: str, key: str) -> Paid:
    """Order, hold its refunds at the gateway and lose their notifications, pay."""
    channel = "alipay" if gateway == "alipay" else "wechat"
    family = _family(shop.app, FAMILY, channel=channel)
    r = _order(shop, family, key=key, channel=channel)
    assert r.status_code == 201, r.text
    no = r.json()["out_trade_no"]
    _control(sandbox, "faults", {"faults": ["refund_pending", "drop_refund"], "out_trade_no": no})
    _pay(sandbox, channel, no)
    _wait(lambda: _get(shop, family, no)["status"] == "paid")
    return Paid(family, no, channel)


def _staff_refund(shop: LiveServer, paid: Paid, person: int = 0) -> str:
    """Finance refunds one member's medical premium; the gateway accepts it (processing)."""
    r = requests.post(
        shop.url + "/api/v1/finance/refunds",
        json={"out_trade_no": paid.out_trade_no, "reason": "other",
              "items": [{"person_id": paid.family.person_ids[person], "insurance": "medical"}]},
        headers={"Authorization": f"Bearer {_staff_token(shop.app)}"},
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["amount_fen"]) == ("processing", MEDICAL)
    return str(r.json()["out_refund_no"])


def _settle_at_gateway(sandbox: Any, paid: Paid, out_refund_no: str) -> None:
    """The gateway finishes the refund; its notification is lost while `drop_refund` holds."""
    _control(sandbox, "refund-notify", {"channel": paid.channel, "out_refund_no": out_refund_no})
    assert sandbox.sandbox.notifier.wait_idle(10)


def _heal(app: Flask, *extra: str) -> dict[str, int]:
    report: dict[str, int] = json.loads(_cli(app, "reconcile-refunds", *extra))
    return report


def _count(app: Flask, model: Any, *where: Any) -> int:
    return int(_scalar(app, select(func.count()).select_from(model).where(*where)) or 0)


def _reversed(app: Flask, out_trade_no: str) -> tuple[int, int]:
    """(reversed contributions of the order, reversal tax records in the outbox)."""
    contributions = _count(
        app,
        Contribution,
        Contribution.out_trade_no == out_trade_no,
        Contribution.status == "reversed",
    )
    return contributions, _count(app, OutboxMessage, OutboxMessage.event == "contribution.reversed")


def _state(app: Flask, out_refund_no: str) -> str:
    return str(_scalar(app, select(Refund.state).where(Refund.out_refund_no == out_refund_no)))


def test_a_lost_refund_notification_is_healed_exactly_once(
    shop: LiveServer, sandbox: Any, gateway: str
) -> None:
    app = shop.app
    paid = _paid(shop, sandbox, gateway, f"heal-{gateway}")
    out_refund_no = _staff_refund(shop, paid)

    # Younger than RECONCILE_REFUNDS_AFTER_MINUTES: not even asked.
    assert _heal(app) == {}
    # Still processing at the gateway: asked, and nothing changes.
    assert _heal(app, "--older-than-minutes", "0") == {"processing": 1}
    assert _state(app, out_refund_no) == "processing"
    assert _get(shop, paid.family, paid.out_trade_no)["status"] == "paid"
    assert _reversed(app, paid.out_trade_no) == (0, 0)

    _settle_at_gateway(sandbox, paid, out_refund_no)
    attempts = requests.get(
        f"{sandbox.base_url}/sandbox/{paid.channel}/notifications",
        params={"out_trade_no": paid.out_trade_no},
        timeout=10,
    ).json()
    assert [e["kind"] for e in attempts if e["event"] == "dropped"] == ["refund"]
    assert _state(app, out_refund_no) == "processing"  # the notification never came

    assert _heal(app, "--older-than-minutes", "0") == {"succeeded": 1}
    order = _get(shop, paid.family, paid.out_trade_no)
    assert order["status"] == "partially_refunded"
    assert [(r["out_refund_no"], r["state"]) for r in order["refunds"]] == [
        (out_refund_no, "succeeded")
    ]
    by_person = {
        (i["person_id"], i["insurance"]): i["contribution"]["status"] for i in order["items"]
    }
    assert by_person.pop((paid.family.person_ids[0], "medical")) == "reversed"
    assert set(by_person.values()) == {"paid"}
    assert _reversed(app, paid.out_trade_no) == (1, 1)

    # Running the healer again changes nothing.
    assert _heal(app, "--older-than-minutes", "0") == {}
    assert _reversed(app, paid.out_trade_no) == (1, 1)

    # The late notification (the gateway retries once the fault is gone) is a duplicate.
    _control(sandbox, "faults", {"clear": True, "out_trade_no": paid.out_trade_no})
    _settle_at_gateway(sandbox, paid, out_refund_no)
    outcomes = [
        o
        for (o,) in _rows(
            app,
            select(ChannelNotification.outcome).where(
                ChannelNotification.out_refund_no == out_refund_no
            ),
        )
    ]
    assert outcomes == ["duplicate"]
    assert _get(shop, paid.family, paid.out_trade_no)["status"] == "partially_refunded"
    assert _reversed(app, paid.out_trade_no) == (1, 1)


def test_the_notification_landing_during_the_healers_query_is_applied_once(
    shop: LiveServer, sandbox: Any, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race's window: the healer read the refund as processing and is asking the gateway
    when the notification arrives and is booked; the healer's answer is then a duplicate."""
    app = shop.app
    paid = _paid(shop, sandbox, gateway, f"race-{gateway}")
    out_refund_no = _staff_refund(shop, paid)
    _settle_at_gateway(sandbox, paid, out_refund_no)
    adapter = get_channel(app.config["SETTINGS"], paid.channel)
    query = adapter.query_refund

    raced: list[bool] = []

    def query_then_notification_lands(**kwargs: str) -> ChannelRefund | None:
        answer = query(**kwargs)
        if raced:  # Alipay's notification handler asks too (for the refund's amount)
            return answer
        raced.append(True)
        _control(sandbox, "faults", {"clear": True, "out_trade_no": paid.out_trade_no})
        _settle_at_gateway(sandbox, paid, out_refund_no)
        _wait(lambda: _state(app, out_refund_no) == "succeeded")
        return answer

    monkeypatch.setattr(adapter, "query_refund", query_then_notification_lands)
    assert _heal(app, "--older-than-minutes", "0") == {"already_final": 1}
    assert _get(shop, paid.family, paid.out_trade_no)["status"] == "partially_refunded"
    assert _reversed(app, paid.out_trade_no) == (1, 1)
    applied = select(ChannelNotification.outcome, ChannelNotification.reason).where(
        ChannelNotification.out_refund_no == out_refund_no
    )
    assert _rows(app, applied) == [("applied", "refund_succeeded")]


def test_an_answer_with_another_amount_changes_nothing_and_is_audited(
    shop: LiveServer, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = shop.app
    app.config["APP_TODAY"] = "2019-11-05"
    paid = _paid(shop, sandbox, "v2", "amount")
    out_refund_no = _staff_refund(shop, paid)
    _settle_at_gateway(sandbox, paid, out_refund_no)
    adapter = get_channel(app.config["SETTINGS"], "wechat")
    query = adapter.query_refund

    def one_fen_more(**kwargs: str) -> ChannelRefund | None:
        answer = query(**kwargs)
        assert answer is not None
        return dataclasses.replace(answer, amount_fen=answer.amount_fen + 1)

    monkeypatch.setattr(adapter, "query_refund", one_fen_more)
    assert _heal(app, "--older-than-minutes", "0") == {"rejected": 1}
    assert _state(app, out_refund_no) == "processing"
    assert _reversed(app, paid.out_trade_no) == (0, 0)
    audited = select(AuditEvent.actor, AuditEvent.outcome, AuditEvent.detail).where(
        AuditEvent.action == "payments.refund.query.refused"
    )
    ((actor, outcome, detail),) = _rows(app, audited)
    assert (actor, outcome) == ("refund-reconciler", "refused")
    assert detail["reason"] == "amount_mismatch"
    assert detail["channel_amount_fen"] == MEDICAL + 1


def test_one_refunds_channel_error_does_not_stop_the_others(
    shop: LiveServer, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = shop.app
    app.config["APP_TODAY"] = "2019-11-05"
    paid = _paid(shop, sandbox, "v2", "errors")
    failing = _staff_refund(shop, paid, person=0)
    unknown = _staff_refund(shop, paid, person=1)
    healed = _staff_refund(shop, paid, person=2)
    for no in (failing, unknown, healed):
        _settle_at_gateway(sandbox, paid, no)
    adapter = get_channel(app.config["SETTINGS"], "wechat")
    query = adapter.query_refund

    def flaky(*, out_trade_no: str, out_refund_no: str) -> ChannelRefund | None:
        if out_refund_no == failing:
            raise ChannelError("refundquery: HTTP 503", code="http_503", retryable=True)
        if out_refund_no == unknown:
            return None
        return query(out_trade_no=out_trade_no, out_refund_no=out_refund_no)

    monkeypatch.setattr(adapter, "query_refund", flaky)
    app.config["SETTINGS"].RECONCILE_REFUNDS_AFTER_MINUTES = 0
    db = app.extensions["database"]
    with app.app_context():
        report = healing.run_once(db, app.config["SETTINGS"])
    assert report["reconcile_refunds"] == {"error": 1, "resent": 1, "succeeded": 1}
    assert [_state(app, no) for no in (failing, unknown, healed)] == [
        "processing",
        "requested",  # for the refund processor to send again
        "succeeded",
    ]
    assert _reversed(app, paid.out_trade_no) == (1, 1)

    monkeypatch.setattr(adapter, "query_refund", query)  # the gateway is back
    assert _heal(app, "--older-than-minutes", "0") == {"succeeded": 1}
    # Sent again under the same out_refund_no, the gateway accepts the refund it already has
    # (a WeChat refund request's answer is "accepted", never the result) and the next
    # healer round books the result the gateway reports.
    assert json.loads(_cli(app, "process-refunds")) == {"refund_processing": 1}
    assert _heal(app, "--older-than-minutes", "0") == {"succeeded": 1}
    assert _get(shop, paid.family, paid.out_trade_no)["status"] == "partially_refunded"
    assert _reversed(app, paid.out_trade_no) == (3, 3)


def _lose_at_gateway(sandbox: Any, paid: Paid, out_refund_no: str) -> None:
    """The gateway loses a refund it had accepted (the only way a query can say "no such
    refund" about one we hold as processing)."""
    store = sandbox.sandbox.store
    with store.locked():
        found = store.find_refund(paid.channel, out_refund_no)
        assert found is not None
        del found[0].refunds[out_refund_no]


def test_a_refund_the_gateway_lost_is_sent_again_and_booked_once(
    shop: LiveServer, sandbox: Any, gateway: str
) -> None:
    app = shop.app
    paid = _paid(shop, sandbox, gateway, f"lost-{gateway}")
    out_refund_no = _staff_refund(shop, paid)
    _lose_at_gateway(sandbox, paid, out_refund_no)

    assert _heal(app, "--older-than-minutes", "0") == {"resent": 1}
    assert _state(app, out_refund_no) == "requested"
    history = select(AuditEvent.actor, AuditEvent.detail).where(
        AuditEvent.action == "payments.refund.requested",
        AuditEvent.subject == f"refund:{out_refund_no}",
    )
    ((actor, detail),) = _rows(app, history)
    assert (actor, detail["from"], detail["reason"]) == (
        "refund-reconciler",
        "processing",
        "not_found_at_channel",
    )
    # A second healer round finds nothing stuck: the refund waits for the processor.
    assert _heal(app, "--older-than-minutes", "0") == {}

    assert json.loads(_cli(app, "process-refunds")) == {"refund_processing": 1}
    assert _state(app, out_refund_no) == "processing"
    assert sandbox.sandbox.store.find_refund(paid.channel, out_refund_no) is not None
    _settle_at_gateway(sandbox, paid, out_refund_no)
    assert _heal(app, "--older-than-minutes", "0") == {"succeeded": 1}
    assert _get(shop, paid.family, paid.out_trade_no)["status"] == "partially_refunded"
    assert _reversed(app, paid.out_trade_no) == (1, 1)
    assert _heal(app, "--older-than-minutes", "0") == {}


def test_a_refund_lost_again_after_its_last_send_is_left_for_finance(
    shop: LiveServer, sandbox: Any
) -> None:
    app = shop.app
    app.config["APP_TODAY"] = "2019-11-05"
    paid = _paid(shop, sandbox, "v2", "lost-often")
    out_refund_no = _staff_refund(shop, paid)
    sends = app.config["SETTINGS"].REFUND_MAX_SENDS
    for _ in range(1, sends):
        _lose_at_gateway(sandbox, paid, out_refund_no)
        assert _heal(app, "--older-than-minutes", "0") == {"resent": 1}
        assert json.loads(_cli(app, "process-refunds")) == {"refund_processing": 1}
    _lose_at_gateway(sandbox, paid, out_refund_no)
    assert _heal(app, "--older-than-minutes", "0") == {"not_found": 1}
    assert _state(app, out_refund_no) == "processing"
    attempts = _scalar(app, select(Refund.attempts).where(Refund.out_refund_no == out_refund_no))
    assert attempts == sends
    assert _reversed(app, paid.out_trade_no) == (0, 0)


def _rows(app: Flask, query: Any) -> list[Any]:
    db = app.extensions["database"]
    with app.app_context():
        rows = [tuple(r) for r in db.session().execute(query).all()]
        db.session.remove()
    return rows


def _set(app: Flask, out_refund_no: str, **values: Any) -> None:
    db = app.extensions["database"]
    with app.app_context():
        with db.job() as session:
            session.execute(
                update(Refund).where(Refund.out_refund_no == out_refund_no).values(**values)
            )
        db.session.remove()


def test_ask_again_after_half_the_age_within_bounds() -> None:
    least = timedelta(minutes=10)
    assert healing.ask_again_after(timedelta(minutes=12), least=least) == least
    assert healing.ask_again_after(timedelta(hours=2), least=least) == timedelta(hours=1)
    assert healing.ask_again_after(timedelta(days=3), least=least) == timedelta(hours=6)


def test_a_refund_still_processing_is_asked_about_again_later_not_every_round(
    shop: LiveServer, sandbox: Any
) -> None:
    app = shop.app
    app.config["APP_TODAY"] = "2019-11-05"
    paid = _paid(shop, sandbox, "v2", "backoff")
    out_refund_no = _staff_refund(shop, paid)
    accepted = utcnow() - timedelta(hours=2)
    _set(app, out_refund_no, updated_at=accepted, next_attempt_at=accepted)

    assert _heal(app) == {"processing": 1}  # the worker's round: due, asked
    due = _scalar(app, select(Refund.next_attempt_at).where(Refund.out_refund_no == out_refund_no))
    assert timedelta(minutes=59) < due - utcnow() < timedelta(minutes=61)
    assert _heal(app) == {}  # not due yet: the channel is not asked again
    # An operator asking by hand about refunds of some age asks about every one of them.
    assert _heal(app, "--older-than-minutes", "0") == {"processing": 1}

    _settle_at_gateway(sandbox, paid, out_refund_no)
    assert _heal(app) == {}  # settled at the gateway, but not due: still waits
    _set(app, out_refund_no, next_attempt_at=utcnow() - timedelta(seconds=1))
    assert _heal(app) == {"succeeded": 1}
    assert _reversed(app, paid.out_trade_no) == (1, 1)
