"""WeChat Pay v2 against the sandbox through wechatpy's own client and verifiers (§1)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import xmltodict
from wechatpy.exceptions import InvalidSignatureException, WeChatPayException
from wechatpy.pay import WeChatPay

from sandbox.crypto import v2_sign
from tests.sandbox.conftest import Receiver, control


def _create(
    pay: WeChatPay, receiver: Receiver, out_trade_no: str, fee: int = 18000, **kw: Any
) -> dict:
    return pay.order.create(
        trade_type="JSAPI",
        body="2020年度城乡居民医疗保险",
        total_fee=fee,
        notify_url=receiver.url("/v2/pay"),
        client_ip="127.0.0.1",
        user_id="oUser0001",
        out_trade_no=out_trade_no,
        **kw,
    )


def test_unifiedorder_reply_is_signed_and_payment_notification_verifies(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    reply = _create(wechatpy_pay, receiver, "SSI2020000001")
    assert reply["prepay_id"].startswith("wx")
    assert wechatpy_pay.check_signature(dict(reply))  # responses are signed (§1.3)
    control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "SSI2020000001"})
    [note] = receiver.wait_for("/v2/pay", 1)
    assert b"<total_fee>18000</total_fee>" in note.body  # bare total_fee
    assert b"<cash_fee><![CDATA[18000]]></cash_fee>" in note.body  # CDATA cash_fee
    data = wechatpy_pay.parse_payment_result(note.body)
    assert data["total_fee"] == 18000 and data["result_code"] == "SUCCESS"
    assert len(data["transaction_id"]) == 28 and data["transaction_id"].startswith("42000")
    assert data["openid"] == "oUser0001"
    sandbox.sandbox.notifier.wait_idle(5)
    [attempt] = [e for e in sandbox.sandbox.store.notification_log("wechat")]
    assert attempt["accepted"] is True and attempt["status"] == 200


def test_query_close_and_state_errors(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    _create(wechatpy_pay, receiver, "SSI2020000002")
    assert wechatpy_pay.order.query(out_trade_no="SSI2020000002")["trade_state"] == "NOTPAY"
    wechatpy_pay.order.close("SSI2020000002")
    assert wechatpy_pay.order.query(out_trade_no="SSI2020000002")["trade_state"] == "CLOSED"
    with pytest.raises(WeChatPayException) as closed:
        wechatpy_pay.order.close("SSI2020000002")
    assert closed.value.errcode == "ORDERCLOSED"
    with pytest.raises(WeChatPayException) as missing:
        wechatpy_pay.order.query(out_trade_no="NOPE000001")
    assert missing.value.errcode == "ORDERNOTEXIST"

    _create(wechatpy_pay, receiver, "SSI2020000003")
    paid = control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "SSI2020000003"})
    query = wechatpy_pay.order.query(transaction_id=paid["order"]["transaction_id"])
    assert query["trade_state"] == "SUCCESS" and query["total_fee"] == "18000"
    with pytest.raises(WeChatPayException) as orderpaid:
        wechatpy_pay.order.close("SSI2020000003")
    assert orderpaid.value.errcode == "ORDERPAID"
    with pytest.raises(WeChatPayException) as again:
        _create(wechatpy_pay, receiver, "SSI2020000003")
    assert again.value.errcode == "ORDERPAID"


def test_out_trade_no_reuse_and_param_checks(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    first = _create(wechatpy_pay, receiver, "SSI2020000004")
    assert _create(wechatpy_pay, receiver, "SSI2020000004")["prepay_id"] == first["prepay_id"]
    with pytest.raises(WeChatPayException) as used:
        _create(wechatpy_pay, receiver, "SSI2020000004", fee=100)
    assert used.value.errcode == "OUT_TRADE_NO_USED"
    for bad in ({"out_trade_no": "abc"}, {"out_trade_no": "SSI2020000005", "fee": 0}):
        no = bad.pop("out_trade_no")
        with pytest.raises(WeChatPayException) as param:
            _create(wechatpy_pay, receiver, no, **({"fee": bad["fee"]} if "fee" in bad else {}))
        assert param.value.errcode == "PARAM_ERROR"
    with pytest.raises(WeChatPayException) as query_url:
        wechatpy_pay.order.create(
            trade_type="JSAPI", body="x", total_fee=1, notify_url=receiver.url("/v2/pay?a=1"),
            client_ip="127.0.0.1", user_id="o1", out_trade_no="SSI2020000006",
        )  # fmt: skip
    assert query_url.value.errcode == "PARAM_ERROR"


def test_bad_signature_and_wrong_ids_are_refused(sandbox: Any, settings: Any) -> None:
    url = f"{sandbox.base_url}/pay/orderquery"
    fields = {
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": "n" * 16,
        "out_trade_no": "SSI2020000001",
    }
    bad = dict(fields, sign="0" * 32)
    body = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in bad.items()) + "</xml>"
    reply = xmltodict.parse(requests.post(url, data=body).text)["xml"]
    assert reply["return_code"] == "FAIL" and reply["err_code"] == "SIGNERROR"
    other = dict(fields, appid="wx1111111111111111")
    other["sign"] = v2_sign(other, settings.WECHAT_API_KEY)
    body = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in other.items()) + "</xml>"
    reply = xmltodict.parse(requests.post(url, data=body).text)["xml"]
    assert reply["result_code"] == "FAIL" and reply["err_code"] == "APPID_MCHID_NOT_MATCH"
    # No Content-Type at all (wechatpy sends none, §1.1) and HMAC-SHA256 are both accepted.
    hmac_fields = dict(fields, sign_type="HMAC-SHA256")
    hmac_fields["sign"] = v2_sign(hmac_fields, settings.WECHAT_API_KEY, "HMAC-SHA256")
    body = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in hmac_fields.items()) + "</xml>"
    raw = requests.post(url, data=body.encode(), headers={"Content-Type": ""}).text
    reply = xmltodict.parse(raw)["xml"]
    assert reply["err_code"] == "ORDERNOTEXIST" and len(reply["sign"]) == 64


def test_hmac_order_notification_has_64_char_sign_and_no_sign_type(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver, settings: Any
) -> None:
    _create(wechatpy_pay, receiver, "SSI2020000007", sign_type="HMAC-SHA256")
    control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "SSI2020000007"})
    [note] = receiver.wait_for("/v2/pay", 1)
    fields = xmltodict.parse(note.body)["xml"]
    assert "sign_type" not in fields and len(fields["sign"]) == 64
    expected = v2_sign(fields, settings.WECHAT_API_KEY, "HMAC-SHA256")
    assert fields["sign"] == expected
    with pytest.raises(InvalidSignatureException):  # wechatpy checks MD5 only (§0.2)
        wechatpy_pay.parse_payment_result(note.body)


def test_refund_apply_query_and_encrypted_notification(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    sandbox.sandbox.settings = sandbox.sandbox.settings.with_(SANDBOX_REFUND_SECONDS=0.0)
    try:
        _create(wechatpy_pay, receiver, "SSI2020000008", fee=30000)
        paid = control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "SSI2020000008"})
        reply = wechatpy_pay.refund.apply(
            total_fee=30000, refund_fee=10000, out_refund_no="RF2020000008",
            out_trade_no="SSI2020000008", notify_url=receiver.url("/v2/refund"),
        )  # fmt: skip
        assert reply["refund_id"].startswith("5000") and reply["refund_fee"] == "10000"
        again = wechatpy_pay.refund.apply(
            total_fee=30000, refund_fee=10000, out_refund_no="RF2020000008",
            out_trade_no="SSI2020000008", notify_url=receiver.url("/v2/refund"),
        )  # fmt: skip
        assert again["refund_id"] == reply["refund_id"]  # same number refunds once
        with pytest.raises(WeChatPayException):
            wechatpy_pay.refund.apply(
                total_fee=30000, refund_fee=25000, out_refund_no="RF2020000009",
                out_trade_no="SSI2020000008",
            )  # fmt: skip
        [note] = receiver.wait_for("/v2/refund", 1)
        data = wechatpy_pay.parse_refund_notify_result(note.body)
        assert data["refund_status"] == "SUCCESS" and data["refund_fee"] == 10000
        assert data["transaction_id"] == paid["order"]["transaction_id"]
        query = wechatpy_pay.refund.query(out_refund_no="RF2020000008")
        assert query["refund_status_0"] == "SUCCESS" and query["refund_count"] == "1"
        assert wechatpy_pay.order.query(out_trade_no="SSI2020000008")["trade_state"] == "REFUND"
    finally:
        sandbox.sandbox.settings = sandbox.sandbox.settings.with_(SANDBOX_REFUND_SECONDS=1.0)


def test_sandboxnew_getsignkey_flow(sandbox: Any, receiver: Receiver, settings: Any) -> None:
    """wechatpy's sandbox=True mode: getsignkey, then everything signed with that key."""
    pay = WeChatPay(
        settings.WECHAT_APPID, settings.WECHAT_API_KEY, settings.WECHAT_MCH_ID, sandbox=True
    )
    pay.API_BASE_URL = sandbox.base_url + "/"
    _create(pay, receiver, "SSI2020000010")
    control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "SSI2020000010"})
    [note] = receiver.wait_for("/v2/pay", 1)
    assert pay.parse_payment_result(note.body)["out_trade_no"] == "SSI2020000010"
