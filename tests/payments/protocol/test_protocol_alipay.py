"""Alipay: notifications built the way the gateway (and our sandbox) builds them.

PROTOCOLS.md §5.5: form POST, `sign` and `sign_type` excluded from the signed string, no empty
fields, RSA2 with Alipay's private key; python-alipay-sdk's `verify` pops sign_type, mutates
its argument and raises on an unknown sign_type (§5.9).
"""

from __future__ import annotations

import base64
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from alipay import AliPay
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from api.clock import BEIJING
from api.config import Config
from api.payments.channels import ChannelRefund, NotificationRejected, TradeState
from api.payments.channels.alipay import AlipayChannel


def _fields(settings: Config, **overrides: str) -> dict[str, str]:
    fields = {
        "gmt_create": "2020-01-01 09:29:00",
        "charset": "utf-8",
        "seller_email": "finance@example.com",
        "subject": "2020年城乡居民医疗保险费",
        "buyer_id": "2088102169481075",
        "invoice_amount": "260.00",
        "notify_id": "2020010100222093000012345678",
        "fund_bill_list": '[{"amount":"260.00","fundChannel":"ALIPAYACCOUNT"}]',
        "notify_type": "trade_status_sync",
        "trade_status": "TRADE_SUCCESS",
        "receipt_amount": "260.00",
        "app_id": settings.ALIPAY_APPID,
        "buyer_pay_amount": "260.00",
        "sign_type": "RSA2",
        "seller_id": settings.ALIPAY_SELLER_ID,
        "gmt_payment": "2020-01-01 09:30:00",
        "notify_time": "2020-01-01 09:30:01",
        "version": "1.0",
        "out_trade_no": "SSI20200101ABCDEFGHJKLMNPQR",
        "total_amount": "260.00",
        "trade_no": "2020010122001430620542154863",
        "auth_app_id": settings.ALIPAY_APPID,
        "buyer_logon_id": "138***8000",
        "point_amount": "0.00",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v != ""}  # Alipay never posts empty fields


def _sign(keys: Any, fields: dict[str, str]) -> str:
    unsigned = "&".join(
        f"{k}={fields[k]}" for k in sorted(fields) if k not in ("sign", "sign_type")
    )
    raw = keys.private("alipay").sign(unsigned.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def _body(fields: dict[str, str], encoding: str = "utf-8") -> bytes:
    return urlencode(fields, encoding=encoding).encode("ascii")


def _signed(settings: Config, keys: Any, **overrides: str) -> dict[str, str]:
    fields = _fields(settings, **overrides)
    fields["sign"] = _sign(keys, fields)
    return fields


def _sdk(settings: Config, keys: Any) -> AliPay:
    return AliPay(
        appid=settings.ALIPAY_APPID,
        app_private_key_string=keys.pem("alipay_app", "private"),
        alipay_public_key_string=keys.pem("alipay", "public"),
        sign_type="RSA2",
    )


def test_sdk_verify_accepts_our_sandbox_style_notification_and_rejects_a_change(
    settings: Config, keys: Any
) -> None:
    fields = _signed(settings, keys)
    data = dict(fields)
    signature = data.pop("sign")
    assert _sdk(settings, keys).verify(dict(data), signature)
    changed = {**data, "total_amount": "0.01"}
    assert not _sdk(settings, keys).verify(changed, signature)


def test_sdk_verify_raises_on_another_sign_type(settings: Config, keys: Any) -> None:
    data = _signed(settings, keys, sign_type="RSA")
    signature = data.pop("sign")
    with pytest.raises(Exception, match="Unknown sign type"):
        _sdk(settings, keys).verify(data, signature)


def test_we_accept_a_genuine_payment_notification(settings: Config, keys: Any) -> None:
    note = AlipayChannel(settings).parse_notification({}, _body(_signed(settings, keys)), "/")
    assert note.kind == "payment" and note.event_id == "2020010100222093000012345678"
    trade = note.trade
    assert trade is not None and trade.state is TradeState.PAID
    assert trade.amount_fen == 26000
    assert trade.transaction_id == "2020010122001430620542154863"
    assert (trade.app_id, trade.merchant_id) == (settings.ALIPAY_APPID, settings.ALIPAY_SELLER_ID)
    assert trade.paid_at is not None and trade.paid_at.isoformat() == "2020-01-01T01:30:00+00:00"


def test_trade_finished_also_means_paid(settings: Config, keys: Any) -> None:
    body = _body(_signed(settings, keys, trade_status="TRADE_FINISHED"))
    assert AlipayChannel(settings).parse_notification({}, body, "/").kind == "payment"


def test_gbk_notification_is_decoded_in_its_own_charset(settings: Config, keys: Any) -> None:
    fields = _signed(settings, keys, charset="gbk")
    note = AlipayChannel(settings).parse_notification({}, _body(fields, "gbk"), "/")
    assert note.kind == "payment"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"total_amount": "0.01"}, "bad_signature"),
        ({"sign": "AAAA"}, "bad_signature"),
        ({"sign": "not base64 !!"}, "bad_signature"),
        ({"sign_type": "RSA"}, "bad_signature"),  # the SDK raises: we turn it into a rejection
    ],
)
def test_changed_notifications_are_rejected(
    settings: Config, keys: Any, change: dict[str, str], reason: str
) -> None:
    fields = {**_signed(settings, keys), **change}
    with pytest.raises(NotificationRejected) as err:
        AlipayChannel(settings).parse_notification({}, _body(fields), "/")
    assert err.value.reason == reason


def test_notification_without_sign_is_rejected(settings: Config, keys: Any) -> None:
    fields = _fields(settings)
    with pytest.raises(NotificationRejected) as err:
        AlipayChannel(settings).parse_notification({}, _body(fields), "/")
    assert err.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"app_id": "2021000000009999"}, "wrong_app_id"),
        ({"seller_id": "2088000000009999"}, "wrong_merchant"),
        ({"seller_id": ""}, "wrong_merchant"),
    ],
)
def test_genuine_notification_for_another_app_or_seller_is_rejected(
    settings: Config, keys: Any, override: dict[str, str], reason: str
) -> None:
    body = _body(_signed(settings, keys, **override))
    with pytest.raises(NotificationRejected) as err:
        AlipayChannel(settings).parse_notification({}, body, "/")
    assert err.value.reason == reason


def test_closed_and_waiting_statuses(settings: Config, keys: Any) -> None:
    channel = AlipayChannel(settings)
    closed = channel.parse_notification(
        {}, _body(_signed(settings, keys, trade_status="TRADE_CLOSED", gmt_payment="")), "/"
    )
    assert closed.kind == "closed"
    assert closed.trade is not None and closed.trade.state is TradeState.CLOSED
    waiting = channel.parse_notification(
        {}, _body(_signed(settings, keys, trade_status="WAIT_BUYER_PAY", gmt_payment="")), "/"
    )
    assert waiting.kind == "pending"


@pytest.mark.parametrize("status", ["TRADE_CLOSED", "TRADE_SUCCESS"])
def test_refund_notifications_report_this_refunds_amount(
    settings: Config, keys: Any, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    """Full refund → TRADE_CLOSED, partial → TRADE_SUCCESS; both carry refund_fee (the
    cumulative refund) and gmt_refund. The refund's own amount comes from a refund query."""
    channel = AlipayChannel(settings)
    asked: list[tuple[str, str]] = []

    def query_refund(out_trade_no: str, out_refund_no: str) -> dict[str, str]:
        asked.append((out_trade_no, out_refund_no))
        return {"code": "10000", "refund_amount": "90.00", "out_request_no": out_refund_no}

    monkeypatch.setattr(channel, "_refund_query_data", query_refund)
    fields = _signed(
        settings,
        keys,
        trade_status=status,
        refund_fee="170.00",
        gmt_refund="2020-01-02 10:00:00.123",
        out_biz_no="SSR20200102ABCDEFGHJKLMNPQR",
    )
    with pytest.raises(NotificationRejected) as err:  # gmt_refund with milliseconds is garbage
        channel.parse_notification({}, _body(fields), "/")
    assert err.value.reason == "malformed"
    fields = _signed(
        settings,
        keys,
        trade_status=status,
        refund_fee="170.00",
        gmt_refund="2020-01-02 10:00:00",
        out_biz_no="SSR20200102ABCDEFGHJKLMNPQR",
    )
    note = channel.parse_notification({}, _body(fields), "/")
    assert note.kind == "refund"
    assert note.refund == ChannelRefund(
        out_trade_no="SSI20200101ABCDEFGHJKLMNPQR",
        out_refund_no="SSR20200102ABCDEFGHJKLMNPQR",
        refund_id=None,
        amount_fen=9000,
        state="succeeded",
        succeeded_at=note.refund.succeeded_at if note.refund else None,
        total_refunded_fen=17000,
    )
    assert asked[-1] == ("SSI20200101ABCDEFGHJKLMNPQR", "SSR20200102ABCDEFGHJKLMNPQR")
    expected_state = TradeState.REFUNDED if status == "TRADE_CLOSED" else TradeState.PAID
    assert note.trade is not None and note.trade.state is expected_state


@pytest.mark.parametrize(
    "body",
    [
        b"total_amount=1&total_amount=2",
        "subject=缴费".encode(),  # raw non-ASCII bytes: not a form body
        b"charset=latin-1&a=b",
        b"a=%ZZ",
    ],
)
def test_malformed_bodies_are_rejected(settings: Config, body: bytes) -> None:
    with pytest.raises(NotificationRejected) as err:
        AlipayChannel(settings).parse_notification({}, body, "/")
    assert err.value.reason in ("malformed", "bad_signature")


def test_amount_with_three_decimals_is_malformed(settings: Config, keys: Any) -> None:
    body = _body(_signed(settings, keys, total_amount="260.001"))
    with pytest.raises(NotificationRejected) as err:
        AlipayChannel(settings).parse_notification({}, body, "/")
    assert err.value.reason == "malformed"


def test_replies_are_exact(settings: Config) -> None:
    channel = AlipayChannel(settings)
    assert channel.success_reply().body == b"success"
    assert len(channel.success_reply().body) == 7
    assert channel.failure_reply("bad_signature").body == b"fail"


@pytest.mark.parametrize("machine_tz", ["UTC", "America/Los_Angeles", "Asia/Shanghai"])
def test_request_timestamp_is_beijing_time_whatever_the_machine_zone(
    settings: Config, machine_tz: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§5.2: the gateway reads `timestamp` as Beijing wall-clock time; the SDK stamps the
    machine's naive local time, another day on a UTC machine from 16:00 Beijing."""
    monkeypatch.setenv("TZ", machine_tz)
    time.tzset()
    try:
        before = datetime.now(BEIJING).replace(microsecond=0, tzinfo=None)
        body = AlipayChannel(settings).client.build_body(
            "alipay.trade.query", {"out_trade_no": "X"}
        )
        after = datetime.now(BEIJING).replace(tzinfo=None)
    finally:
        monkeypatch.undo()
        time.tzset()
    stamped = datetime.strptime(body["timestamp"], "%Y-%m-%d %H:%M:%S")
    assert before <= stamped <= after
