"""The payments flow with WECHAT_PAY_VERSION=v3, end to end against the local sandbox.

The v2 flow is `test_payments_flows.py`; this runs the same core (which never branches on the
version, PAYMENTS.md) through the wechatpayv3 adapter and the sandbox's v3 gateway: RSA
`paySign` for `wx.requestPayment`, AES-256-GCM callbacks with `Wechatpay-*` headers, the
REFUND.SUCCESS callback on the refund notify URL, healing and a forged callback (PROTOCOLS.md
§2.3-§2.5). Live API (real commits, both backends) + in-process sandbox.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask
from sqlalchemy import func, select

from api.audit.models import AuditEvent
from api.payments.models import ChannelNotification, Contribution
from api.payments.outbox import OutboxMessage
from tests.payments.conftest import LiveServer, use_settings
from tests.payments.factories import Member
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

MERCHANT_PUBLIC_KEY = Path(__file__).resolve().parents[2] / "sandbox/keys/merchant_public_key.pem"
REFUND_PATH = "/api/v1/payments/notify/wechat/refund"


@pytest.fixture
def v3shop(shop: LiveServer, sandbox: Any) -> Iterator[LiveServer]:
    """The live API with WECHAT_PAY_VERSION=v3 (a fresh Config, so fresh adapters), on the
    concentrated payment phase's date; the `shop` fixture restores the settings afterwards."""
    app = shop.app
    saved_today = app.config.get("APP_TODAY", "")
    use_settings(app, WECHAT_PAY_VERSION="v3")
    app.config["APP_TODAY"] = "2019-11-05"
    yield shop
    app.config["APP_TODAY"] = saved_today


def _count(app: Flask, model: Any, *where: Any) -> int:
    return int(_scalar(app, select(func.count()).select_from(model).where(*where)) or 0)


def _outcomes(app: Flask, out_trade_no: str) -> list[tuple[str, str | None, str]]:
    db = app.extensions["database"]
    with app.app_context():
        rows = db.session().execute(
            select(
                ChannelNotification.outcome, ChannelNotification.reason, ChannelNotification.path
            )
            .where(ChannelNotification.out_trade_no == out_trade_no)
            .order_by(ChannelNotification.id)
        )
        result = [(o, r, p) for o, r, p in rows]
        db.session.remove()
    return result


def _attempts(sandbox: Any, out_trade_no: str) -> list[dict[str, Any]]:
    r = requests.get(
        f"{sandbox.base_url}/sandbox/wechat/notifications",
        params={"out_trade_no": out_trade_no},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e.get("event", "attempt") == "attempt"]


def _verify_pay_sign(app: Flask, params: dict[str, str]) -> None:
    """PROTOCOLS.md §2.5: SHA256withRSA over appId, timeStamp, nonceStr, package, each + \\n,
    with the merchant private key — so the merchant public key must verify it."""
    key = serialization.load_pem_public_key(MERCHANT_PUBLIC_KEY.read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    app_id = app.config["SETTINGS"].WECHAT_APPID
    message = f"{app_id}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    key.verify(
        base64.b64decode(params["paySign"]), message.encode(), padding.PKCS1v15(), hashes.SHA256()
    )  # raises InvalidSignature


def _paid_order(live: LiveServer, sandbox: Any, family: Family, key: str) -> dict[str, Any]:
    order = _order(live, family, key=key).json()
    _pay(sandbox, "wechat", order["out_trade_no"])
    paid: dict[str, Any] = _wait(
        lambda: (o := _get(live, family, order["out_trade_no"]))["status"] == "paid" and o
    )
    return paid


def test_v3_order_pay_duplicate_and_refund(v3shop: LiveServer, sandbox: Any) -> None:
    app = v3shop.app
    family = _family(app, FAMILY)
    r = _order(v3shop, family, key="v3-1")
    assert r.status_code == 201, r.text
    order = r.json()
    no = order["out_trade_no"]
    params = order["pay_params"]
    assert sorted(params) == ["nonceStr", "package", "paySign", "signType", "timeStamp"]
    assert params["signType"] == "RSA"
    assert params["package"].startswith("prepay_id=")
    _verify_pay_sign(app, params)
    with pytest.raises(InvalidSignature):  # a changed field no longer verifies
        _verify_pay_sign(app, {**params, "nonceStr": params["nonceStr"] + "x"})

    _pay(sandbox, "wechat", no)
    paid = _wait(lambda: (o := _get(v3shop, family, no))["status"] == "paid" and o)
    assert all(i["contribution"]["status"] == "paid" for i in paid["items"])
    sandbox.sandbox.notifier.wait_idle(10)
    first = _attempts(sandbox, no)
    assert [(a["status"], a["accepted"]) for a in first] == [(204, True)]
    headers = first[0]["request_headers"]
    assert headers["Wechatpay-Serial"] == app.config["SETTINGS"].WECHAT_PAY_PUBLIC_KEY_ID
    assert json.loads(first[0]["request_body"])["resource"]["algorithm"] == "AEAD_AES_256_GCM"
    assert _outcomes(app, no) == [("applied", None, "/api/v1/payments/notify/wechat")]
    contributions = (Contribution, Contribution.out_trade_no == no)
    assert _count(app, *contributions) == 4
    assert _count(app, OutboxMessage) == 4

    # The very same callback again (WeChat retries; a copy may reach another server): success
    # reply, nothing changes. Replayed byte for byte with its headers; still within 5 minutes.
    again = requests.post(
        v3shop.url + "/api/v1/payments/notify/wechat",
        data=first[0]["request_body"].encode(),
        headers=headers,
        timeout=30,
    )
    assert again.status_code == 204, again.text
    assert [o for o, _, _ in _outcomes(app, no)] == ["applied", "duplicate"]
    assert _count(app, *contributions) == 4
    assert _count(app, OutboxMessage) == 4

    # A staff refund of one item; WeChat answers PROCESSING and settles by REFUND.SUCCESS.
    staff = _staff_token(app)
    adult = family.person_ids[0]
    r = requests.post(
        v3shop.url + "/api/v1/finance/refunds",
        json={"out_trade_no": no, "reason": "other",
              "items": [{"person_id": adult, "insurance": "medical"}]},
        headers={"Authorization": f"Bearer {staff}"},
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["amount_fen"] == MEDICAL
    done = _wait(lambda: (o := _get(v3shop, family, no))["status"] == "partially_refunded" and o)
    assert done["refunds"][0]["state"] == "succeeded"
    by_item = {(i["person_id"], i["insurance"]): i["contribution"]["status"] for i in done["items"]}
    assert by_item[(adult, "medical")] == "reversed"
    assert list(by_item.values()).count("paid") == 3
    assert ("applied", "refund_succeeded", REFUND_PATH) in _outcomes(app, no)
    reversals = (OutboxMessage, OutboxMessage.event == "contribution.reversed")
    assert _count(app, *reversals) == 1
    sandbox.sandbox.notifier.wait_idle(10)
    refund_calls = [a for a in _attempts(sandbox, no) if a["url"].endswith(REFUND_PATH)]
    assert refund_calls and all(a["accepted"] for a in refund_calls)
    assert "REFUND.SUCCESS" in {json.loads(a["request_body"])["event_type"] for a in refund_calls}
    assert _count(app, *reversals) == 1  # however many copies of REFUND.SUCCESS arrived


def test_v3_dropped_notification_is_healed_once(v3shop: LiveServer, sandbox: Any) -> None:
    app = v3shop.app
    family = _family(app, FAMILY)
    no = _order(v3shop, family, key="v3-drop").json()["out_trade_no"]
    _pay(sandbox, "wechat", no, faults=["drop"])
    sandbox.sandbox.notifier.wait_idle(5)
    assert _get(v3shop, family, no)["status"] == "open"
    assert '"paid": 1' in _cli(app, "reconcile-open", "--older-than-minutes", "0")
    assert '"paid"' not in _cli(app, "reconcile-open", "--older-than-minutes", "0")
    paid = _get(v3shop, family, no)
    assert paid["status"] == "paid" and paid["paid_at"]
    assert _count(app, Contribution, Contribution.out_trade_no == no) == 4
    assert _count(app, OutboxMessage) == 4
    assert _count(app, ChannelNotification) == 0


def test_v3_forged_callback_is_rejected_and_logged(v3shop: LiveServer, sandbox: Any) -> None:
    app = v3shop.app
    family = _family(app, [Member(date(1980, 2, 2))])
    no = _order(v3shop, family, key="v3-forged", insurances=("medical",)).json()["out_trade_no"]
    _pay(sandbox, "wechat", no, faults=["forge_signature"])
    assert sandbox.sandbox.notifier.wait_idle(20)
    attempts = _attempts(sandbox, no)
    assert attempts and all((a["status"], a["accepted"]) == (400, False) for a in attempts)
    assert _get(v3shop, family, no)["status"] == "open"
    assert _count(app, Contribution) == 0 and _count(app, OutboxMessage) == 0
    db = app.extensions["database"]
    with app.app_context():
        session = db.session()
        logged = session.execute(
            select(
                ChannelNotification.outcome,
                ChannelNotification.reason,
                ChannelNotification.signature_valid,
            )
        ).all()
        audited = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "payments.notification.refused")
        ).all()
        db.session.remove()
    assert len(logged) == len(attempts)
    assert set(logged) == {("rejected", "bad_signature", False)}
    assert len(audited) == len(attempts)
    assert all(a.detail == {"reason": "bad_signature"} for a in audited)
    # The money did move at WeChat: the reconciler, not the forgery, books it.
    assert '"paid": 1' in _cli(app, "reconcile-open", "--older-than-minutes", "0")
    assert _get(v3shop, family, no)["status"] == "paid"
    assert _count(app, Contribution) == 1
