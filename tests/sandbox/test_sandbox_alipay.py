"""Alipay against the sandbox through python-alipay-sdk: signed replies, notifications,
refunds, auth codes (§5)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from alipay import AliPay
from alipay.exceptions import AliPayException

from tests.sandbox.conftest import Receiver, control


def _precreate(client: AliPay, receiver: Receiver, no: str, amount: str = "300.00") -> dict:
    return client.api_alipay_trade_precreate(
        subject="2020年度城乡居民养老保险", out_trade_no=no, total_amount=amount,
        notify_url=receiver.url("/alipay/notify"),
    )  # fmt: skip


def test_precreate_query_pay_and_notification_verifies(
    sandbox: Any, alipay_client: AliPay, receiver: Receiver, settings: Any
) -> None:
    reply = _precreate(alipay_client, receiver, "ALI2020000001")
    assert reply["code"] == "10000"
    assert reply["qr_code"].endswith("/sandbox/pay/alipay/ALI2020000001")
    # A never-scanned precreate trade does not exist yet (§5.6).
    assert alipay_client.api_alipay_trade_query(out_trade_no="ALI2020000001")["sub_code"] == (
        "ACQ.TRADE_NOT_EXIST"
    )
    page = requests.get(reply["qr_code"])  # scanning = opening the payer page
    assert "确认支付" in page.text and "300.00" in page.text
    assert alipay_client.api_alipay_trade_query(out_trade_no="ALI2020000001")["trade_status"] == (
        "WAIT_BUYER_PAY"
    )
    paid = requests.post(reply["qr_code"], data={"action": "pay"})
    assert "支付成功" in paid.text
    [note] = receiver.wait_for("/alipay/notify", 1)
    form = note.form()
    assert all(value for value in form.values())  # no empty fields (§5.5)
    assert form["trade_status"] == "TRADE_SUCCESS" and form["total_amount"] == "300.00"
    assert (
        form["seller_id"] == settings.ALIPAY_SELLER_ID and form["app_id"] == settings.ALIPAY_APPID
    )
    assert len(form["trade_no"]) == 28
    signature = form.pop("sign")
    assert alipay_client.verify(dict(form), signature)
    changed = dict(form, total_amount="300.01")
    assert not alipay_client.verify(changed, signature)
    query = alipay_client.api_alipay_trade_query(out_trade_no="ALI2020000001")
    assert query["trade_status"] == "TRADE_SUCCESS" and query["trade_no"] == form["trade_no"]


def test_business_failures_are_signed_40004(
    sandbox: Any, alipay_client: AliPay, receiver: Receiver
) -> None:
    assert alipay_client.api_alipay_trade_close(out_trade_no="NOPE")["sub_code"] == (
        "ACQ.TRADE_NOT_EXIST"
    )
    _precreate(alipay_client, receiver, "ALI2020000002")
    control(sandbox, "pay", {"channel": "alipay", "out_trade_no": "ALI2020000002"})
    again = _precreate(alipay_client, receiver, "ALI2020000002")
    assert again["code"] == "40004" and again["sub_code"] == "ACQ.TRADE_HAS_SUCCESS"
    bad = _precreate(alipay_client, receiver, "ALI2020000003", amount="1.001")
    assert bad["code"] == "40002"


def test_refunds_partial_full_and_idempotent(
    sandbox: Any, alipay_client: AliPay, receiver: Receiver
) -> None:
    _precreate(alipay_client, receiver, "ALI2020000004", amount="100.00")
    control(sandbox, "pay", {"channel": "alipay", "out_trade_no": "ALI2020000004"})
    receiver.wait_for("/alipay/notify", 1)
    whole = alipay_client.api_alipay_trade_refund("30.00", out_trade_no="ALI2020000004")
    assert whole["sub_code"] == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    part = alipay_client.api_alipay_trade_refund(
        "30.00", out_trade_no="ALI2020000004", out_request_no="R1"
    )
    assert part["code"] == "10000" and part["fund_change"] == "Y" and part["refund_fee"] == "30.00"
    again = alipay_client.api_alipay_trade_refund(
        "30.00", out_trade_no="ALI2020000004", out_request_no="R1"
    )
    assert again["fund_change"] == "N" and again["refund_fee"] == "30.00"
    rest = alipay_client.api_alipay_trade_refund(
        "70.00", out_trade_no="ALI2020000004", out_request_no="R2"
    )
    assert rest["refund_fee"] == "100.00"
    notes = receiver.wait_for("/alipay/notify", 3)
    forms = [n.form() for n in notes[1:]]
    by_batch = {f["out_biz_no"]: f for f in forms}
    assert (
        by_batch["R1"]["trade_status"] == "TRADE_SUCCESS"
        and by_batch["R1"]["refund_fee"] == "30.00"
    )
    assert by_batch["R2"]["trade_status"] == "TRADE_CLOSED" and by_batch["R2"]["gmt_refund"]
    for form in forms:
        signature = form.pop("sign")
        assert alipay_client.verify(form, signature)
    query = alipay_client.api_alipay_trade_fastpay_refund_query("R1", out_trade_no="ALI2020000004")
    assert query["refund_amount"] == "30.00" and query["refund_status"] == "REFUND_SUCCESS"
    none = alipay_client.api_alipay_trade_fastpay_refund_query("R9", out_trade_no="ALI2020000004")
    assert none["code"] == "10000" and "refund_amount" not in none
    closed = alipay_client.api_alipay_trade_refund(
        "1.00", out_trade_no="ALI2020000004", out_request_no="R3"
    )
    assert closed["sub_code"] == "ACQ.TRADE_HAS_CLOSE"
    status = alipay_client.api_alipay_trade_query(out_trade_no="ALI2020000004")
    assert status["trade_status"] == "TRADE_CLOSED" and status["send_pay_date"]


def test_bad_signature_is_refused(sandbox: Any, alipay_client: AliPay, settings: Any) -> None:
    from alipay import AliPay as Client

    from sandbox.settings import KEYS_DIR

    impostor = Client(
        appid=settings.ALIPAY_APPID, app_notify_url=None,
        app_private_key_string=(KEYS_DIR / "merchant_private_key.pem").read_text(),
        alipay_public_key_string=(KEYS_DIR / "alipay_public_key.pem").read_text(),
    )  # fmt: skip
    impostor._gateway = alipay_client._gateway
    with pytest.raises(AliPayException) as refused:
        impostor.api_alipay_trade_query(out_trade_no="ALI2020000001")
    assert "isv.invalid-signature" in str(refused.value)


def test_oauth_token_stable_user_and_single_use(sandbox: Any, alipay_client: AliPay) -> None:
    first = alipay_client.server_api(
        "alipay.system.oauth.token", grant_type="authorization_code", code="wangwu.a"
    )
    second = alipay_client.server_api(
        "alipay.system.oauth.token", grant_type="authorization_code", code="wangwu.b"
    )
    assert first["user_id"] == second["user_id"] and first["user_id"].startswith("2088")
    assert len(first["user_id"]) == 16
    with pytest.raises(AliPayException):
        alipay_client.server_api(
            "alipay.system.oauth.token", grant_type="authorization_code", code="wangwu.a"
        )


def test_wap_pay_order_string_opens_payer_page_and_create_needs_buyer(
    sandbox: Any, alipay_client: AliPay, receiver: Receiver
) -> None:
    order_string = alipay_client.api_alipay_trade_wap_pay(
        "养老保险", "ALI2020000005", "200.00", notify_url=receiver.url("/alipay/notify")
    )
    page = requests.get(alipay_client._gateway + "?" + order_string)
    assert page.status_code == 200 and "确认支付" in page.text
    assert urlsplit(page.url).path == "/sandbox/pay/alipay/ALI2020000005"
    created = alipay_client.server_api(
        "alipay.trade.create",
        {"out_trade_no": "ALI2020000006", "total_amount": "1.00", "subject": "x",
         "buyer_id": "2088000000000777"},
        notify_url=receiver.url("/alipay/notify"),
    )  # fmt: skip
    assert created["code"] == "10000" and len(created["trade_no"]) == 28
    assert dict(parse_qsl(order_string))["method"] == "alipay.trade.wap.pay"


def test_post_form_gateway_and_float_amounts(
    sandbox: Any, alipay_client: AliPay, receiver: Receiver
) -> None:
    """Alipay's docs show POST forms (§5.7); a float-summed amount is refused (§5.2)."""
    import json as _json

    data = alipay_client.build_body(
        "alipay.trade.precreate",
        {"subject": "x", "out_trade_no": "ALI2020000009", "total_amount": 0.1 + 0.2},
    )
    signed = dict(parse_qsl(alipay_client.sign_data(data)))
    body = requests.post(alipay_client._gateway, data=signed).text
    inner = _json.loads(body)["alipay_trade_precreate_response"]
    assert inner["code"] == "40002"
    data = alipay_client.build_body(
        "alipay.trade.precreate",
        {"subject": "x", "out_trade_no": "ALI2020000009", "total_amount": 12.3},
    )
    signed = dict(parse_qsl(alipay_client.sign_data(data)))
    reply = alipay_client._verify_and_return_sync_response(
        requests.post(alipay_client._gateway, data=signed).text, "alipay_trade_precreate_response"
    )
    assert reply["code"] == "10000"
    assert sandbox.sandbox.store.get("alipay", "ALI2020000009").amount_fen == 1230
