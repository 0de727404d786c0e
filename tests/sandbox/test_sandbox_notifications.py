"""Retry schedules (§0.9) and every fault (sandbox.faults) as seen by a merchant's endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import xmltodict
from alipay import AliPay
from wechatpy.exceptions import InvalidSignatureException, WeChatPayException
from wechatpy.pay import WeChatPay

from sandbox.notifier import ALIPAY_RETRY_SCHEDULE, WECHAT_RETRY_SCHEDULE
from tests.sandbox.conftest import V2_ACK, Receiver, control, notifications


def _v2_order(pay: WeChatPay, receiver: Receiver, no: str, fee: int = 18000) -> None:
    pay.order.create(
        trade_type="JSAPI", body="医疗保险", total_fee=fee, notify_url=receiver.url("/v2/pay"),
        client_ip="127.0.0.1", user_id="oUser0001", out_trade_no=no,
    )  # fmt: skip


def _ali_order(client: AliPay, receiver: Receiver, no: str, amount: str = "100.00") -> None:
    reply = client.api_alipay_trade_precreate(
        subject="养老保险", out_trade_no=no, total_amount=amount,
        notify_url=receiver.url("/alipay/notify"),
    )  # fmt: skip
    assert reply["code"] == "10000"


def _pay(sandbox: Any, channel: str, no: str, *faults: str) -> dict[str, Any]:
    return control(sandbox, "pay", {"channel": channel, "out_trade_no": no, "faults": list(faults)})


# Schedules ------------------------------------------------------------------------------------


def test_failing_endpoint_gets_whole_wechat_schedule(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    receiver.answer("/v2/pay", 200, b"<xml><return_code>FAIL</return_code></xml>")
    _v2_order(wechatpy_pay, receiver, "SCHED0000001")
    started = time.monotonic()
    _pay(sandbox, "wechat", "SCHED0000001")
    got = receiver.wait_for("/v2/pay", 16, timeout=20)
    assert len(got) == 16
    assert (
        got[-1].at - started >= 0.9 * sum(WECHAT_RETRY_SCHEDULE) * sandbox.sandbox.clock.time_scale
    )
    sandbox.sandbox.notifier.wait_idle(5)
    assert len(receiver.at("/v2/pay")) == 16  # and then it gives up
    log = notifications(sandbox, "wechat")
    assert [e["attempt"] for e in log] == list(range(1, 17))
    assert not any(e["accepted"] for e in log)


def test_failing_endpoint_gets_whole_alipay_schedule_and_success_stops_it(
    sandbox: Any, alipay_client: AliPay, receiver: Receiver
) -> None:
    receiver.answer("/alipay/notify", 200, b"success\n")  # not exactly `success`: a failure
    _ali_order(alipay_client, receiver, "SCHED0000002")
    _pay(sandbox, "alipay", "SCHED0000002")
    got = receiver.wait_for("/alipay/notify", 8, timeout=20)
    assert len(got) == 8 == len(ALIPAY_RETRY_SCHEDULE) + 1
    assert len({r.form()["notify_id"] for r in got}) == 1  # stable across retries
    sandbox.sandbox.notifier.wait_idle(5)

    receiver.reset()
    calls = {"n": 0}

    def third_time_lucky(_r: Any) -> tuple[int, bytes]:
        calls["n"] += 1
        return (200, b"success") if calls["n"] >= 3 else (500, b"oops")

    receiver.answers["/alipay/notify"] = third_time_lucky
    _ali_order(alipay_client, receiver, "SCHED0000003")
    _pay(sandbox, "alipay", "SCHED0000003")
    sandbox.sandbox.notifier.wait_idle(10)
    assert len(receiver.at("/alipay/notify")) == 3


def test_v2_ack_must_be_success_xml(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    receiver.answer("/v2/pay", 200, b"success")
    _v2_order(wechatpy_pay, receiver, "SCHED0000004")
    _pay(sandbox, "wechat", "SCHED0000004")
    assert len(receiver.wait_for("/v2/pay", 16, timeout=20)) == 16


# Faults ---------------------------------------------------------------------------------------


def test_duplicate_and_copies(sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver) -> None:
    _v2_order(wechatpy_pay, receiver, "FAULT0000001")
    _pay(sandbox, "wechat", "FAULT0000001", "duplicate")
    twice = receiver.wait_for("/v2/pay", 2)
    assert len(twice) == 2
    ids = {xmltodict.parse(r.body)["xml"]["transaction_id"] for r in twice}
    assert len(ids) == 1
    sandbox.sandbox.notifier.wait_idle(5)
    receiver.reset()
    _v2_order(wechatpy_pay, receiver, "FAULT0000002")
    _pay(sandbox, "wechat", "FAULT0000002", "copies:4")
    copies = receiver.wait_for("/v2/pay", 4)
    assert len(copies) == 4
    assert max(r.at for r in copies) - min(r.at for r in copies) < 0.5  # at the same instant
    for copy in copies:
        assert wechatpy_pay.parse_payment_result(copy.body)["out_trade_no"] == "FAULT0000002"


def test_delay_and_drop(sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver) -> None:
    _v2_order(wechatpy_pay, receiver, "FAULT0000003")
    started = time.monotonic()
    _pay(sandbox, "wechat", "FAULT0000003", "delay:0.5")
    [late] = receiver.wait_for("/v2/pay", 1)
    assert late.at - started >= 0.5
    _v2_order(wechatpy_pay, receiver, "FAULT0000004")
    control(sandbox, "faults", {"out_trade_no": "FAULT0000004", "faults": ["drop"]})
    _pay(sandbox, "wechat", "FAULT0000004")
    sandbox.sandbox.notifier.wait_idle(5)
    assert len(receiver.at("/v2/pay")) == 1  # only the delayed one
    assert wechatpy_pay.order.query(out_trade_no="FAULT0000004")["trade_state"] == "SUCCESS"
    dropped = [e for e in notifications(sandbox, "wechat") if e["out_trade_no"] == "FAULT0000004"]
    assert [e["event"] for e in dropped] == ["dropped"]


def test_forged_changed_and_wrong_ids(
    sandbox: Any, wechatpy_pay: WeChatPay, alipay_client: AliPay, receiver: Receiver, settings: Any
) -> None:
    _v2_order(wechatpy_pay, receiver, "FAULT0000005")
    _pay(sandbox, "wechat", "FAULT0000005", "forge_signature")
    [forged] = receiver.wait_for("/v2/pay", 1)
    with pytest.raises(InvalidSignatureException):
        wechatpy_pay.parse_payment_result(forged.body)
    receiver.reset()
    _v2_order(wechatpy_pay, receiver, "FAULT0000006", fee=18000)
    _pay(sandbox, "wechat", "FAULT0000006", "amount_changed")
    [changed] = receiver.wait_for("/v2/pay", 1)
    assert wechatpy_pay.parse_payment_result(changed.body)["total_fee"] == 18001  # signed fine
    _ali_order(alipay_client, receiver, "FAULT0000007")
    _pay(sandbox, "alipay", "FAULT0000007", "wrong_appid", "wrong_mch")
    [wrong] = receiver.wait_for("/alipay/notify", 1)
    form = wrong.form()
    assert (
        form["app_id"] != settings.ALIPAY_APPID and form["seller_id"] != settings.ALIPAY_SELLER_ID
    )
    signature = form.pop("sign")
    assert alipay_client.verify(form, signature)  # correctly signed, wrong merchant
    _ali_order(alipay_client, receiver, "FAULT0000008")
    _pay(sandbox, "alipay", "FAULT0000008", "forge_signature")
    forged_form = receiver.wait_for("/alipay/notify", 2)[1].form()
    assert not alipay_client.verify(forged_form, forged_form.pop("sign"))


def test_out_of_order_refund_notice_first(
    sandbox: Any, alipay_client: AliPay, receiver: Receiver
) -> None:
    _ali_order(alipay_client, receiver, "FAULT0000009")
    _pay(sandbox, "alipay", "FAULT0000009", "out_of_order")
    time.sleep(0.2)
    assert receiver.at("/alipay/notify") == []  # held back
    refund = alipay_client.api_alipay_trade_refund(
        "100.00", out_trade_no="FAULT0000009", out_request_no="R1"
    )
    assert refund["code"] == "10000"
    first, second = receiver.wait_for("/alipay/notify", 2)
    assert first.form()["trade_status"] == "TRADE_CLOSED" and "refund_fee" in first.form()
    assert second.form()["trade_status"] == "TRADE_SUCCESS" and "refund_fee" not in second.form()


def test_api_faults_prepay_query_timeout(
    sandbox: Any, wechatpy_pay: WeChatPay, wxpay_v3: Any, alipay_client: AliPay, receiver: Receiver
) -> None:
    control(sandbox, "faults", {"faults": ["prepay_5xx"]})
    with pytest.raises(WeChatPayException):
        _v2_order(wechatpy_pay, receiver, "FAULT0000010")
    with pytest.raises(Exception, match="500"):
        _ali_order(alipay_client, receiver, "FAULT0000010")
    control(sandbox, "faults", {"clear": True})
    assert sandbox.sandbox.store.get("wechat", "FAULT0000010") is None
    _v2_order(wechatpy_pay, receiver, "FAULT0000010")
    control(sandbox, "faults", {"out_trade_no": "FAULT0000010", "faults": ["query_5xx"]})
    status, _ = wxpay_v3.query(out_trade_no="FAULT0000010")
    assert status == 500
    control(sandbox, "faults", {"out_trade_no": "FAULT0000011", "faults": ["timeout:1"]})
    wechatpy_pay.timeout = 0.3
    with pytest.raises(requests.Timeout):
        _v2_order(wechatpy_pay, receiver, "FAULT0000011")
    time.sleep(0.8)
    # The request was processed before the reply hung: the order exists.
    assert sandbox.sandbox.store.get("wechat", "FAULT0000011") is not None


def test_v3_probe_then_real_callback(sandbox: Any, wxpay_v3: Any, receiver: Receiver) -> None:
    wxpay_v3.pay(
        description="医疗保险", out_trade_no="FAULT0000012", amount={"total": 100},
        payer={"openid": "oUser0001"}, notify_url=receiver.url("/v3/pay"),
    )  # fmt: skip
    _pay(sandbox, "wechat", "FAULT0000012", "probe")
    probe, real = receiver.wait_for("/v3/pay", 2)
    assert probe.headers["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert real.at >= probe.at
    event = wxpay_v3.callback(real.headers, real.body)
    assert event["resource"]["out_trade_no"] == "FAULT0000012"
    assert json.loads(probe.body)["id"] != ""


def test_unknown_fault_is_refused(sandbox: Any) -> None:
    response = requests.post(
        f"{sandbox.base_url}/sandbox/control/faults", json={"faults": ["explode"]}
    )
    assert response.status_code == 400 and response.json()["code"] == "UNKNOWN_FAULT"
    assert V2_ACK.startswith(b"<xml>")


def test_reset_cancels_deliveries_in_flight(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    sandbox.sandbox.clock.time_scale = 0.001  # 15 s → 15 ms, 3 min → 0.18 s …
    receiver.answer("/v2/pay", 500, b"")
    _v2_order(wechatpy_pay, receiver, "RESET0000001")
    _pay(sandbox, "wechat", "RESET0000001")
    assert len(receiver.wait_for("/v2/pay", 3)) >= 3
    control(sandbox, "reset")
    assert sandbox.sandbox.notifier.wait_idle(2)
    seen = len(receiver.at("/v2/pay"))
    time.sleep(0.5)
    assert len(receiver.at("/v2/pay")) == seen
    assert notifications(sandbox, "wechat") == []
