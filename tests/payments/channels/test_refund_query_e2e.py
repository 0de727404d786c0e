"""`query_refund` on every adapter against the real local sandbox: WeChat v2 `refundquery`,
v3 `GET /v3/refund/domestic/refunds/{no}`, Alipay `fastpay.refund.query`.

Each answers with the `ChannelRefund` a refund notification would give — "processing" while
the gateway holds the refund (the sandbox's `refund_pending` fault), "succeeded" with the
refund's own amount once it settled — or None for a refund the gateway does not know. Answers
are signed by the sandbox and verified by the adapters, as every other call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from api.config import Config
from api.payments.channels import ChannelError, PaymentChannel, PrepayRequest, get_channel
from tests.payments.channels.conftest import api_settings


def _paid(
    channel: PaymentChannel,
    name: str,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
    *faults: str,
) -> PrepayRequest:
    """A paid order whose later refunds are held PROCESSING and notified to nobody."""
    req = make_prepay(name, scene="qr") if name == "alipay" else make_prepay(name)
    channel.prepay(req)
    status, body = control("faults", {"faults": list(faults), "out_trade_no": req.out_trade_no})
    assert status == 200, body
    status, body = control("pay", {"channel": name, "out_trade_no": req.out_trade_no})
    assert status == 200, body
    return req


def _refund(channel: PaymentChannel, req: PrepayRequest, refund_fen: int) -> Any:
    return channel.refund(
        out_trade_no=req.out_trade_no,
        out_refund_no="SSR" + req.out_trade_no[3:],
        total_fen=req.amount_fen,
        refund_fen=refund_fen,
        reason="退费",
        notify_url=req.notify_url + "/refund",
    )


@pytest.fixture(params=["v2", "v3", "alipay"])
def any_channel(
    request: pytest.FixtureRequest, sandbox: Any, receiver: Any
) -> tuple[str, PaymentChannel]:
    """(gateway name, adapter) for WeChat v2, WeChat v3 and Alipay, wired to the receiver."""
    name = "alipay" if request.param == "alipay" else "wechat"
    version = "v2" if name == "alipay" else request.param
    channel = get_channel(api_settings(sandbox, WECHAT_PAY_VERSION=version), name)
    receiver.channels[name] = channel
    return name, channel


def test_processing_then_succeeded_then_unknown(
    any_channel: tuple[str, PaymentChannel],
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    name, channel = any_channel
    req = _paid(channel, name, control, make_prepay, "refund_pending", "drop_refund")
    out_refund_no = "SSR" + req.out_trade_no[3:]
    accepted = _refund(channel, req, 9000)
    assert (accepted.state, accepted.amount_fen) == ("processing", 9000)

    held = channel.query_refund(out_trade_no=req.out_trade_no, out_refund_no=out_refund_no)
    assert held is not None
    assert (held.out_trade_no, held.out_refund_no) == (req.out_trade_no, out_refund_no)
    assert (held.state, held.amount_fen, held.succeeded_at) == ("processing", 9000, None)

    status, _ = control("refund-notify", {"channel": name, "out_refund_no": out_refund_no})
    assert status == 200
    done = channel.query_refund(out_trade_no=req.out_trade_no, out_refund_no=out_refund_no)
    assert done is not None
    assert (done.state, done.amount_fen) == ("succeeded", 9000)
    assert done.succeeded_at is not None and done.succeeded_at.tzinfo is not None
    if name == "wechat":
        assert done.refund_id and done.refund_id == accepted.refund_id
    # `drop_refund`: the gateway settled it but told nobody; only the query knows.
    assert receiver.wait_for(1, timeout=0.5, kind="refund") == []

    assert (
        channel.query_refund(out_trade_no=req.out_trade_no, out_refund_no="SSR" + "X" * 24) is None
    )


def test_alipay_refund_pending_answers_fund_change_n_without_refund_status(
    alipay: PaymentChannel,
    sandbox: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    """What `refund_pending` looks like on the wire: the SDK's own refund query (signed,
    verified) answers the refund's data but no `refund_status` until it settled."""
    req = _paid(alipay, "alipay", control, make_prepay, "refund_pending")
    _refund(alipay, req, 26000)
    client = alipay.client  # type: ignore[attr-defined]
    out_refund_no = "SSR" + req.out_trade_no[3:]
    raw = client.api_alipay_trade_fastpay_refund_query(out_refund_no, out_trade_no=req.out_trade_no)
    assert raw["code"] == "10000" and raw["refund_amount"] == "260.00"
    assert "refund_status" not in raw
    control("refund-notify", {"channel": "alipay", "out_refund_no": out_refund_no})
    raw = client.api_alipay_trade_fastpay_refund_query(out_refund_no, out_trade_no=req.out_trade_no)
    assert raw["refund_status"] == "REFUND_SUCCESS"
    # The SDK's own query sends no `query_options`, so (as on the real gateway) no refund time;
    # our adapter asks for it and gets the time the money went back.
    assert "gmt_refund_pay" not in raw
    done = alipay.query_refund(out_trade_no=req.out_trade_no, out_refund_no=out_refund_no)
    assert done is not None and done.state == "succeeded"
    assert done.succeeded_at is not None and done.succeeded_at.tzinfo is not None
    order = requests.get(
        f"{sandbox.base_url}/sandbox/control/orders/alipay/{req.out_trade_no}", timeout=10
    ).json()
    assert order["vendor_state"] == "TRADE_CLOSED"  # fully refunded now


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_query_of_an_unreachable_gateway_is_a_retryable_channel_error(version: str) -> None:
    dead = Config.from_env(
        {}, WECHAT_PAY_VERSION=version, WECHAT_PAY_API_BASE="http://127.0.0.1:9/"
    )
    with pytest.raises(ChannelError) as err:
        get_channel(dead, "wechat").query_refund(out_trade_no="SSI1", out_refund_no="SSR1")
    assert err.value.retryable
