"""WeChat Pay v3 against the sandbox through wechatpayv3 in public-key mode (§2)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.sandbox.conftest import Receiver, control


def _pay(client: Any, receiver: Receiver, no: str, total: int = 18000) -> tuple[int, Any]:
    return client.pay(
        description="2020年度城乡居民医疗保险",
        out_trade_no=no,
        amount={"total": total, "currency": "CNY"},
        payer={"openid": "oUser0001"},
        notify_url=receiver.url("/v3/pay"),
    )


def test_prepay_query_close_every_reply_verified(
    sandbox: Any, wxpay_v3: Any, receiver: Receiver
) -> None:
    status, text = _pay(wxpay_v3, receiver, "V3SSI0000001")  # raises if unsigned (§2.7)
    assert status == 200 and json.loads(text)["prepay_id"].startswith("wx")
    status, text = wxpay_v3.query(out_trade_no="V3SSI0000001")
    assert status == 200 and json.loads(text)["trade_state"] == "NOTPAY"
    status, _ = wxpay_v3.close("V3SSI0000001")
    assert status == 204  # the empty 204 is signed too
    assert json.loads(wxpay_v3.query(out_trade_no="V3SSI0000001")[1])["trade_state"] == "CLOSED"
    status, text = wxpay_v3.query(out_trade_no="NOPE00000001")
    assert status == 404 and json.loads(text)["code"] == "ORDER_NOT_EXIST"
    status, text = _pay(wxpay_v3, receiver, "V3SSI0000001", total=1)
    assert status == 400 and json.loads(text)["code"] == "ORDER_CLOSED"


def test_callback_verifies_with_sdk_and_carries_transaction(
    sandbox: Any, wxpay_v3: Any, receiver: Receiver, settings: Any
) -> None:
    _pay(wxpay_v3, receiver, "V3SSI0000002")
    control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "V3SSI0000002"})
    [note] = receiver.wait_for("/v3/pay", 1)
    assert note.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert note.headers["Wechatpay-Serial"] == settings.WECHAT_PAY_PUBLIC_KEY_ID
    event = wxpay_v3.callback(note.headers, note.body)
    assert event["event_type"] == "TRANSACTION.SUCCESS"
    resource = event["resource"]
    assert resource["trade_state"] == "SUCCESS" and resource["amount"]["total"] == 18000
    assert resource["mchid"] == settings.WECHAT_MCH_ID and resource["transaction_id"].startswith(
        "42"
    )
    tampered = note.body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCESX"')
    assert wxpay_v3.callback(note.headers, tampered) is None
    status, text = _pay(wxpay_v3, receiver, "V3SSI0000002", total=1)
    assert status == 400 and json.loads(text)["code"] == "ORDERPAID"


def test_refund_and_refund_callback(sandbox: Any, wxpay_v3: Any, receiver: Receiver) -> None:
    _pay(wxpay_v3, receiver, "V3SSI0000003", total=30000)
    control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "V3SSI0000003"})
    status, text = wxpay_v3.refund(
        out_refund_no="V3RF00000003", amount={"refund": 10000, "total": 30000, "currency": "CNY"},
        out_trade_no="V3SSI0000003", notify_url=receiver.url("/v3/refund"),
    )  # fmt: skip
    assert status == 200 and json.loads(text)["status"] == "PROCESSING"
    [note] = receiver.wait_for("/v3/refund", 1, timeout=10)
    event = wxpay_v3.callback(note.headers, note.body)
    assert event["event_type"] == "REFUND.SUCCESS"
    assert event["resource"]["amount"]["refund"] == 10000
    status, text = wxpay_v3.query_refund("V3RF00000003")
    assert status == 200 and json.loads(text)["status"] == "SUCCESS"
    status, text = wxpay_v3.refund(
        out_refund_no="V3RF00000004", amount={"refund": 25000, "total": 30000, "currency": "CNY"},
        out_trade_no="V3SSI0000003",
    )  # fmt: skip
    assert status == 400


def test_unsigned_or_stale_requests_get_401(sandbox: Any, wxpay_v3: Any, settings: Any) -> None:
    url = f"{sandbox.base_url}/v3/pay/transactions/out-trade-no/V3SSI0000001?mchid=1900000109"
    assert requests.get(url).status_code == 401
    from wechatpayv3.utils import build_authorization

    path = "/v3/pay/transactions/out-trade-no/V3SSI0000001?mchid=1900000109"
    good = build_authorization(
        path, "GET", settings.WECHAT_MCH_ID, settings.WECHAT_MCH_CERT_SERIAL,
        wxpay_v3._core._private_key,
    )  # fmt: skip
    forged = good.replace('signature="', 'signature="A')
    response = requests.get(url, headers={"Authorization": forged, "Accept": "application/json"})
    assert response.status_code == 401 and response.json()["code"] == "SIGN_ERROR"
    stale = good.replace(f'timestamp="{int(time.time())}', 'timestamp="1000000000')
    if stale != good:
        assert requests.get(url, headers={"Authorization": stale}).status_code == 401
    ok = requests.get(url, headers={"Authorization": good, "Accept": "application/json"})
    assert ok.status_code == 404  # authenticated; the order simply does not exist


@pytest.mark.parametrize("answer", [(500, b'{"code":"FAIL","message":"x"}'), (200, b"")])
def test_ack_is_by_status_code(
    sandbox: Any, wxpay_v3: Any, receiver: Receiver, answer: tuple[int, bytes]
) -> None:
    receiver.answer("/v3/pay", *answer)
    _pay(wxpay_v3, receiver, "V3SSI0000005")
    control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "V3SSI0000005"})
    expected = 16 if answer[0] >= 400 else 1
    assert len(receiver.wait_for("/v3/pay", expected, timeout=15)) == expected
