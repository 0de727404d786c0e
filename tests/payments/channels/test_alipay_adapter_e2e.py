"""The Alipay adapter against the real local sandbox, end to end: the three scenes, query,
close, partial and full refunds with their notifications, faults and the bill."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests

from api.payments.channels import (
    AlreadyPaid,
    ChannelError,
    PaymentChannel,
    PrepayRequest,
    TradeState,
)


def _pay(control: Callable[..., Any], out_trade_no: str, *faults: str) -> None:
    status, body = control(
        "pay", {"channel": "alipay", "out_trade_no": out_trade_no, "faults": list(faults)}
    )
    assert status == 200, body


def test_qr_pay_notify_partial_and_full_refund(
    alipay: PaymentChannel,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    req = make_prepay("alipay", scene="qr")
    result = alipay.prepay(req)
    assert result.pay_params["qr_code"].startswith("http")
    # A precreate trade exists only once scanned (§5.6): "not found" means unpaid.
    assert alipay.query(req.out_trade_no).state is TradeState.NOT_FOUND

    _pay(control, req.out_trade_no)
    paid = alipay.query(req.out_trade_no)
    assert paid.state is TradeState.PAID and paid.amount_fen == 26000 and paid.transaction_id
    (delivery,) = receiver.wait_for(1, kind="payment")
    assert delivery.reply_body == b"success"
    assert delivery.note.trade.amount_fen == 26000
    assert delivery.note.trade.transaction_id == paid.transaction_id
    assert delivery.note.event_id

    first = alipay.refund(
        out_trade_no=req.out_trade_no,
        out_refund_no="SSR1" + req.out_trade_no[4:],
        total_fen=26000,
        refund_fen=9000,
        reason="退费",
        notify_url="",
    )
    assert (first.state, first.amount_fen, first.total_refunded_fen) == ("succeeded", 9000, 9000)
    (partial,) = receiver.wait_for(1, kind="refund")
    assert partial.note.refund.amount_fen == 9000
    assert partial.note.refund.out_refund_no == "SSR1" + req.out_trade_no[4:]
    assert partial.note.trade.state is TradeState.PAID  # TRADE_SUCCESS after a partial refund

    # A retry of the same refund refunds once (fund_change N) and still reports success.
    again = alipay.refund(
        out_trade_no=req.out_trade_no,
        out_refund_no="SSR1" + req.out_trade_no[4:],
        total_fen=26000,
        refund_fen=9000,
        reason="退费",
        notify_url="",
    )
    assert again.state == "succeeded" and again.total_refunded_fen == 9000

    rest = alipay.refund(
        out_trade_no=req.out_trade_no,
        out_refund_no="SSR2" + req.out_trade_no[4:],
        total_fen=26000,
        refund_fen=17000,
        reason="退费",
        notify_url="",
    )
    assert rest.total_refunded_fen == 26000
    refunds = receiver.wait_for(2, kind="refund")
    full = next(d for d in refunds if d.note.refund.out_refund_no.startswith("SSR2"))
    assert full.note.refund.amount_fen == 17000  # this refund's own amount, not the total
    assert full.note.refund.total_refunded_fen == 26000
    assert full.note.trade.state is TradeState.REFUNDED  # TRADE_CLOSED with refund_fee
    assert alipay.query(req.out_trade_no).state is TradeState.REFUNDED


def test_miniprogram_trade_create_with_buyer_id(
    alipay: PaymentChannel, control: Callable[..., Any], make_prepay: Callable[..., PrepayRequest]
) -> None:
    req = make_prepay("alipay", payer_id="2088102169481075")
    result = alipay.prepay(req)
    assert result.pay_params == {"trade_no": result.channel_ref}
    assert alipay.query(req.out_trade_no).state is TradeState.OPEN
    _pay(control, req.out_trade_no)
    trade = alipay.query(req.out_trade_no)
    assert trade.transaction_id == result.channel_ref
    assert trade.payer_id == "2088102169481075"


def test_miniprogram_without_buyer_is_refused_before_the_gateway(
    alipay: PaymentChannel, make_prepay: Callable[..., PrepayRequest]
) -> None:
    with pytest.raises(ChannelError) as err:
        alipay.prepay(make_prepay("alipay"))
    assert err.value.code == "PAYER_REQUIRED"


def test_wap_url_opens_at_the_gateway_and_pays(
    alipay: PaymentChannel,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    req = make_prepay("alipay", scene="wap")
    url = alipay.prepay(req).pay_params["pay_url"]
    assert url.startswith(alipay._settings.ALIPAY_GATEWAY + "?")  # type: ignore[attr-defined]
    opened = requests.get(url, allow_redirects=False, timeout=10)  # the phone browser
    assert opened.status_code < 400, opened.text
    _pay(control, req.out_trade_no)
    assert receiver.wait_for(1, kind="payment")
    assert alipay.query(req.out_trade_no).state is TradeState.PAID


def test_close_unpaid_and_close_paid(
    alipay: PaymentChannel,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    unpaid = make_prepay("alipay", payer_id="2088102169481075")
    alipay.prepay(unpaid)
    alipay.close(unpaid.out_trade_no)
    assert alipay.query(unpaid.out_trade_no).state is TradeState.CLOSED
    never_scanned = make_prepay("alipay", scene="qr")
    alipay.prepay(never_scanned)
    alipay.close(never_scanned.out_trade_no)  # ACQ.TRADE_NOT_EXIST: nothing to close

    paid = make_prepay("alipay", payer_id="2088102169481075")
    alipay.prepay(paid)
    _pay(control, paid.out_trade_no)
    with pytest.raises(AlreadyPaid):
        alipay.close(paid.out_trade_no)
    receiver.wait_for(1, kind="payment")


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("forge_signature", "bad_signature"),
        ("wrong_appid", "wrong_app_id"),
        ("wrong_mch", "wrong_merchant"),
    ],
)
def test_bad_notifications_are_rejected_with_fail(
    alipay: PaymentChannel,
    receiver: Any,
    sandbox: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
    fault: str,
    reason: str,
) -> None:
    sandbox.sandbox.clock.time_scale = 0.000002  # the whole retry schedule in ~0.2 s
    req = make_prepay("alipay", scene="qr")
    alipay.prepay(req)
    _pay(control, req.out_trade_no, fault)
    rejected = receiver.wait_for(2, reason=reason)
    assert len(rejected) >= 2 and rejected[0].reply_body == b"fail"
    assert not receiver.matching(kind="payment")


def test_query_5xx_is_retryable(
    alipay: PaymentChannel, control: Callable[..., Any], make_prepay: Callable[..., PrepayRequest]
) -> None:
    req = make_prepay("alipay", payer_id="2088102169481075")
    alipay.prepay(req)
    control("faults", {"faults": ["query_5xx"], "out_trade_no": req.out_trade_no})
    with pytest.raises(ChannelError) as err:
        alipay.query(req.out_trade_no)
    assert err.value.retryable


def test_prepay_5xx_is_retryable(
    alipay: PaymentChannel, control: Callable[..., Any], make_prepay: Callable[..., PrepayRequest]
) -> None:
    req = make_prepay("alipay", scene="qr")
    control("faults", {"faults": ["prepay_5xx"], "out_trade_no": req.out_trade_no})
    with pytest.raises(ChannelError) as err:
        alipay.prepay(req)
    assert err.value.retryable


def test_bill_lists_payment_and_refund(
    alipay: PaymentChannel,
    sandbox: Any,
    receiver: Any,
    control: Callable[..., Any],
    make_prepay: Callable[..., PrepayRequest],
) -> None:
    req = make_prepay("alipay", scene="qr")
    alipay.prepay(req)
    _pay(control, req.out_trade_no)
    alipay.refund(
        out_trade_no=req.out_trade_no,
        out_refund_no="SSR" + req.out_trade_no[3:],
        total_fen=26000,
        refund_fen=100,
        reason="",
        notify_url="",
    )
    rows = alipay.download_bill(sandbox.sandbox.clock.today())
    mine = sorted(
        (row.kind, row.amount_fen, row.out_refund_no)
        for row in rows
        if row.out_trade_no == req.out_trade_no
    )
    assert mine == [("payment", 26000, None), ("refund", 100, "SSR" + req.out_trade_no[3:])]
    assert alipay.download_bill(sandbox.sandbox.clock.today() - timedelta(days=400)) == []
    receiver.wait_for(1, kind="refund")
