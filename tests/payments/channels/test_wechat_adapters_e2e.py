"""WeChat Pay v2 and v3 adapters against the real local sandbox, end to end.

Every test runs for both API versions (the `wechat` fixture): prepay → the resident pays
(sandbox control API) → query → the notification reaches our receiver and verifies → refund
→ refund notification; close; ORDERPAID; gateway faults.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from api.config import SANDBOX_KEYS, Config
from api.payments.channels import (
    AlreadyPaid,
    ChannelError,
    PaymentChannel,
    PrepayRequest,
    TradeState,
    get_channel,
)
from api.payments.channels import wechat_v2_protocol as v2proto
from api.payments.channels.wechat_v2 import WeChatV2Channel


def _check_pay_params(channel: PaymentChannel, params: dict[str, str], prepay_id: str) -> None:
    """What wx.requestPayment gets: exactly five keys and a paySign that verifies."""
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["package"] == f"prepay_id={prepay_id}"
    appid = channel._settings.WECHAT_APPID  # type: ignore[attr-defined]
    if isinstance(channel, WeChatV2Channel):
        assert params["signType"] == "MD5"
        signed = {"appId": appid, **{k: v for k, v in params.items() if k != "paySign"}}
        assert v2proto.sign(signed, channel._settings.WECHAT_API_KEY) == params["paySign"]
    else:
        assert params["signType"] == "RSA"
        key = serialization.load_pem_public_key(
            (SANDBOX_KEYS / "merchant_public_key.pem").read_bytes()
        )
        message = f"{appid}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
        key.verify(  # type: ignore[union-attr, call-arg]
            base64.b64decode(params["paySign"]),
            message.encode(),
            padding.PKCS1v15(),  # type: ignore[arg-type]
            hashes.SHA256(),  # type: ignore[arg-type]
        )


def test_pay_query_notify_refund_round_trip(
    wechat: PaymentChannel,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    req = make_prepay("wechat")
    result = wechat.prepay(req)
    assert result.channel_ref
    _check_pay_params(wechat, result.pay_params, result.channel_ref)

    before = wechat.query(req.out_trade_no)
    assert before.state is TradeState.OPEN and before.transaction_id is None

    status, _ = control("pay", {"channel": "wechat", "out_trade_no": req.out_trade_no})
    assert status == 200
    paid = wechat.query(req.out_trade_no)
    assert paid.state is TradeState.PAID
    assert paid.amount_fen == 26000 and paid.transaction_id
    assert paid.paid_at is not None and abs(paid.paid_at - datetime.now(UTC)) < timedelta(hours=1)

    (delivery,) = receiver.wait_for(1, kind="payment")
    assert delivery.reply_status in (200, 204)
    if isinstance(wechat, WeChatV2Channel):
        assert delivery.reply_body == v2proto.SUCCESS_XML
    note = delivery.note
    assert note.trade.out_trade_no == req.out_trade_no
    assert note.trade.transaction_id == paid.transaction_id
    assert note.trade.amount_fen == 26000

    refund = wechat.refund(
        out_trade_no=req.out_trade_no,
        out_refund_no="SSR" + req.out_trade_no[3:],
        total_fen=26000,
        refund_fen=9000,
        reason="重复缴费退费",
        notify_url=receiver.url("/api/v1/payments/notify/wechat/refund"),
    )
    assert refund.amount_fen == 9000
    assert refund.state in ("processing", "succeeded")
    (refunded,) = receiver.wait_for(1, kind="refund")
    assert refunded.note.refund.out_refund_no == "SSR" + req.out_trade_no[3:]
    assert refunded.note.refund.out_trade_no == req.out_trade_no
    assert refunded.note.refund.amount_fen == 9000
    assert refunded.note.refund.state == "succeeded"
    assert wechat.query(req.out_trade_no).state is TradeState.REFUNDED


def test_close_unpaid_then_close_again(
    wechat: PaymentChannel, control: Callable[..., Any], make_prepay: Callable[..., PrepayRequest]
) -> None:
    req = make_prepay("wechat")
    wechat.prepay(req)
    wechat.close(req.out_trade_no)
    assert wechat.query(req.out_trade_no).state is TradeState.CLOSED
    wechat.close(req.out_trade_no)  # ORDERCLOSED is "done", not an error
    status, body = control("pay", {"channel": "wechat", "out_trade_no": req.out_trade_no})
    assert status == 409 and body["code"] == "ORDERCLOSED"


def test_close_of_a_paid_order_is_already_paid(
    wechat: PaymentChannel,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    req = make_prepay("wechat")
    wechat.prepay(req)
    control("pay", {"channel": "wechat", "out_trade_no": req.out_trade_no})
    with pytest.raises(AlreadyPaid):
        wechat.close(req.out_trade_no)
    receiver.wait_for(1, kind="payment")


def test_unknown_order_is_not_found(wechat: PaymentChannel) -> None:
    assert wechat.query("SSI20200101NEVERCREATED0000").state is TradeState.NOT_FOUND


@pytest.mark.parametrize("fault", ["prepay_5xx", "query_5xx"])
def test_gateway_5xx_is_a_retryable_channel_error(
    wechat: PaymentChannel,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
    fault: str,
) -> None:
    req = make_prepay("wechat")
    if fault == "query_5xx":
        wechat.prepay(req)
    control("faults", {"faults": [fault], "out_trade_no": req.out_trade_no})
    with pytest.raises(ChannelError) as err:
        if fault == "prepay_5xx":
            wechat.prepay(req)
        else:
            wechat.query(req.out_trade_no)
    assert err.value.retryable
    assert not isinstance(err.value, AlreadyPaid)


def test_gateway_timeout_is_a_retryable_channel_error(
    wechat: PaymentChannel,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    req = make_prepay("wechat")
    wechat.prepay(req)
    control("faults", {"faults": ["timeout:2"], "out_trade_no": req.out_trade_no})
    client = wechat.client  # type: ignore[attr-defined]
    if isinstance(wechat, WeChatV2Channel):
        monkeypatch.setattr(client, "timeout", 0.3)
    else:
        monkeypatch.setattr(client._core, "_timeout", 0.3)
    with pytest.raises(ChannelError) as err:
        wechat.query(req.out_trade_no)
    assert err.value.retryable and err.value.code == "network"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("forge_signature", "bad_signature"),
        ("wrong_appid", "wrong_app_id"),
        ("wrong_mch", "wrong_merchant"),
    ],
)
def test_bad_notifications_are_rejected_and_retried(
    wechat: PaymentChannel,
    receiver: Any,
    sandbox: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
    fault: str,
    reason: str,
) -> None:
    sandbox.sandbox.clock.time_scale = 0.000002  # the whole retry schedule in ~0.2 s
    req = make_prepay("wechat")
    wechat.prepay(req)
    control("pay", {"channel": "wechat", "out_trade_no": req.out_trade_no, "faults": [fault]})
    rejected = receiver.wait_for(2, reason=reason)
    assert len(rejected) >= 2  # the failure reply made the gateway try again
    assert rejected[0].reply_status in (200, 400)
    assert rejected[0].reply_body != v2proto.SUCCESS_XML
    assert not receiver.matching(kind="payment")
    # The query still tells the truth.
    assert wechat.query(req.out_trade_no).state is TradeState.PAID


def test_changed_amount_is_genuine_and_reported_as_sent(
    wechat: PaymentChannel,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    """A correctly signed notification with another amount verifies: the core compares."""
    req = make_prepay("wechat")
    wechat.prepay(req)
    control(
        "pay", {"channel": "wechat", "out_trade_no": req.out_trade_no, "faults": ["amount_changed"]}
    )
    (delivery,) = receiver.wait_for(1, kind="payment")
    assert delivery.note.trade.amount_fen == 26001


def test_signature_probe_is_rejected_then_the_real_one_accepted(
    wechat: PaymentChannel,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    req = make_prepay("wechat")
    wechat.prepay(req)
    control("pay", {"channel": "wechat", "out_trade_no": req.out_trade_no, "faults": ["probe"]})
    assert receiver.wait_for(1, kind="payment")
    assert receiver.matching(reason="bad_signature")


def test_concurrent_copies_all_verify(
    wechat: PaymentChannel,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    req = make_prepay("wechat")
    wechat.prepay(req)
    control("pay", {"channel": "wechat", "out_trade_no": req.out_trade_no, "faults": ["copies:5"]})
    copies = receiver.wait_for(5, kind="payment")
    assert len(copies) == 5
    assert len({d.note.trade.transaction_id for d in copies}) == 1


def test_bill_lists_the_payment_and_the_refund(
    wechat: PaymentChannel,
    sandbox: Any,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    req = make_prepay("wechat")
    wechat.prepay(req)
    control("pay", {"channel": "wechat", "out_trade_no": req.out_trade_no})
    wechat.refund(
        out_trade_no=req.out_trade_no,
        out_refund_no="SSR" + req.out_trade_no[3:],
        total_fen=26000,
        refund_fen=26000,
        reason="",
        notify_url=receiver.url("/api/v1/payments/notify/wechat/refund"),
    )
    receiver.wait_for(1, kind="refund")
    rows = wechat.download_bill(sandbox.sandbox.clock.today())
    mine = [row for row in rows if row.out_trade_no == req.out_trade_no]
    kinds = sorted((row.kind, row.amount_fen) for row in mine)
    assert kinds == [("payment", 26000), ("refund", 26000)]
    payment = next(row for row in mine if row.kind == "payment")
    assert payment.transaction_id == wechat.query(req.out_trade_no).transaction_id
    assert wechat.download_bill(sandbox.sandbox.clock.today() - timedelta(days=400)) == []


def test_v3_bill_with_a_wrong_hash_is_refused(
    sandbox: Any,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Config.from_env(
        {}, WECHAT_PAY_API_BASE=sandbox.base_url + "/", WECHAT_PAY_VERSION="v3"
    )
    wechat = get_channel(settings, "wechat")
    receiver.channels["wechat"] = wechat
    req = make_prepay("wechat")
    wechat.prepay(req)
    control("pay", {"channel": "wechat", "out_trade_no": req.out_trade_no})
    client = wechat.client  # type: ignore[attr-defined]
    genuine = client.download_bill

    def tampered(url: str) -> tuple[int, bytes]:
        status, content = genuine(url)
        data = gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content
        return status, data.replace(b"260.00", b"261.00")

    monkeypatch.setattr(client, "download_bill", tampered)
    with pytest.raises(ChannelError) as err:
        wechat.download_bill(sandbox.sandbox.clock.today())
    assert err.value.code == "bad_hash"
    receiver.wait_for(1, kind="payment")
