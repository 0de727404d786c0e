"""WeChat Pay v3: our paySign and callback handling against wechatpayv3's own code.

PROTOCOLS.md §2.3 (callback signatures), §2.4 (AES-256-GCM resource), §2.5 (RSA paySign),
§0.8 (wechatpayv3 does not check the timestamp's age: we must).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.utils import rsa_verify

from api.config import Config
from api.payments.channels import NotificationRejected, TradeState
from api.payments.channels.wechat_v3 import WeChatV3Channel, load_private_key_pem


def _sdk_as_merchant(settings: Config, keys: Any) -> WeChatPay:
    """A wechatpayv3 client configured the way a merchant would, public-key mode, no network."""
    return WeChatPay(
        wechatpay_type=WeChatPayType.MINIPROG,
        mchid=settings.WECHAT_MCH_ID,
        private_key=load_private_key_pem(str(keys.directory / "merchant_private_key.pem")),
        cert_serial_no=settings.WECHAT_MCH_CERT_SERIAL,
        appid=settings.WECHAT_APPID,
        apiv3_key=settings.WECHAT_APIV3_KEY,
        public_key=keys.pem("wechatpay", "public"),
        public_key_id=settings.WECHAT_PAY_PUBLIC_KEY_ID,
    )


def _transaction(settings: Config, **overrides: Any) -> dict[str, Any]:
    resource = {
        "appid": settings.WECHAT_APPID,
        "mchid": settings.WECHAT_MCH_ID,
        "out_trade_no": "SSI20200101ABCDEFGHJKLMNPQR",
        "transaction_id": "4200000540202005267407409907",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2020-01-01T09:30:00+08:00",
        "payer": {"openid": "oUpF8uMEb4qRXf22hE3X68TekukE"},
        "amount": {
            "total": 26000,
            "payer_total": 26000,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
    resource.update(overrides)
    return resource


def _callback(
    settings: Config,
    keys: Any,
    resource: dict[str, Any],
    *,
    event_type: str = "TRANSACTION.SUCCESS",
    timestamp: int | None = None,
    apiv3_key: str | None = None,
    serial: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """A callback built the way WeChat builds one: GCM resource, RSA over the raw body."""
    nonce = secrets.token_hex(6)  # 12 characters
    aad = "transaction" if event_type.startswith("TRANSACTION") else "refund"
    key = (apiv3_key or settings.WECHAT_APIV3_KEY).encode()
    ciphertext = AESGCM(key).encrypt(
        nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), aad.encode()
    )
    envelope = {
        "id": "EV-2018022511223320873",
        "create_time": "2020-01-01T09:30:05+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": {
            "original_type": aad,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": aad,
            "nonce": nonce,
        },
    }
    body = json.dumps(envelope, ensure_ascii=False).encode("utf-8")  # raw UTF-8, not \u escapes
    ts = str(int(time.time()) if timestamp is None else timestamp)
    header_nonce = secrets.token_hex(16)
    message = f"{ts}\n{header_nonce}\n".encode() + body + b"\n"
    signature = keys.private("wechatpay").sign(message, padding.PKCS1v15(), hashes.SHA256())
    headers = {
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": header_nonce,
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
        "Wechatpay-Serial": serial or settings.WECHAT_PAY_PUBLIC_KEY_ID,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }
    return headers, body


def test_adapter_client_builds_offline_in_public_key_mode(settings: Config) -> None:
    """No /v3/certificates call at construction, PKCS#1 merchant key converted, base set."""
    client = WeChatV3Channel(settings).client
    assert client._core._gate_way == "http://127.0.0.1:9"
    assert client._core._public_key_id == settings.WECHAT_PAY_PUBLIC_KEY_ID


def test_pay_sign_verifies_with_wechatpayv3_and_the_merchant_public_key(
    settings: Config, keys: Any
) -> None:
    params = WeChatV3Channel(settings).pay_params("wx201410272009395522657a690389285100")
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["signType"] == "RSA"
    # rsa_verify checks "a\nb\nc\n"; feeding appId / timeStamp / "nonceStr\npackage" makes it
    # check exactly appId\ntimeStamp\nnonceStr\npackage\n (§2.5).
    merchant_public = keys.public("merchant")
    body = f"{params['nonceStr']}\n{params['package']}"
    assert rsa_verify(
        settings.WECHAT_APPID, params["timeStamp"], body, params["paySign"], merchant_public
    )
    assert not rsa_verify(
        "wx0000000000000000", params["timeStamp"], body, params["paySign"], merchant_public
    )
    # And with the SDK's own signer for the same lines.
    sdk = _sdk_as_merchant(settings, keys)
    lines = [settings.WECHAT_APPID, params["timeStamp"], params["nonceStr"], params["package"]]
    assert sdk.sign(lines) == params["paySign"]


def test_wechatpayv3_and_we_accept_the_same_genuine_callback(settings: Config, keys: Any) -> None:
    headers, body = _callback(settings, keys, _transaction(settings, attach="缴费"))
    sdk_view = _sdk_as_merchant(settings, keys).callback(headers, body)
    assert sdk_view is not None
    assert sdk_view["resource"]["amount"]["total"] == 26000
    note = WeChatV3Channel(settings).parse_notification(headers, body, "/notify/wechat")
    assert note.kind == "payment" and note.event_id == "EV-2018022511223320873"
    assert note.trade is not None
    assert note.trade.state is TradeState.PAID
    assert note.trade.amount_fen == sdk_view["resource"]["amount"]["total"]
    assert note.trade.transaction_id == sdk_view["resource"]["transaction_id"]
    assert note.trade.payer_id == "oUpF8uMEb4qRXf22hE3X68TekukE"
    assert note.trade.paid_at is not None and note.trade.paid_at.isoformat() == (
        "2020-01-01T01:30:00+00:00"
    )


def test_headers_are_read_case_insensitively(settings: Config, keys: Any) -> None:
    headers, body = _callback(settings, keys, _transaction(settings))
    lowered = {k.lower(): v for k, v in headers.items()}
    assert WeChatV3Channel(settings).parse_notification(lowered, body, "/").kind == "payment"


@pytest.mark.parametrize("age", [-360, 360, 3600])  # clear of the 300 s edge
def test_stale_callback_wechatpayv3_accepts_we_reject(
    settings: Config, keys: Any, age: int
) -> None:
    headers, body = _callback(
        settings, keys, _transaction(settings), timestamp=int(time.time()) - age
    )
    assert _sdk_as_merchant(settings, keys).callback(headers, body) is not None  # §0.8
    with pytest.raises(NotificationRejected) as err:
        WeChatV3Channel(settings).parse_notification(headers, body, "/")
    assert err.value.reason == "stale_timestamp"


def _reject(settings: Config, headers: dict[str, str], body: bytes) -> str:
    with pytest.raises(NotificationRejected) as err:
        WeChatV3Channel(settings).parse_notification(headers, body, "/")
    return err.value.reason


def test_tampered_body_is_rejected_by_both(settings: Config, keys: Any) -> None:
    headers, body = _callback(settings, keys, _transaction(settings))
    tampered = body.replace(b'"summary": "', b'"summary": "x')
    assert _sdk_as_merchant(settings, keys).callback(headers, tampered) is None
    assert _reject(settings, headers, tampered) == "bad_signature"


def test_re_serialised_json_is_not_the_signed_bytes(settings: Config, keys: Any) -> None:
    headers, body = _callback(settings, keys, _transaction(settings))
    same_json = json.dumps(json.loads(body)).encode()  # \u-escaped, different spacing
    assert json.loads(same_json) == json.loads(body)
    assert _reject(settings, headers, same_json) == "bad_signature"


def test_signature_probe_and_wrong_signer_are_rejected(settings: Config, keys: Any) -> None:
    headers, body = _callback(settings, keys, _transaction(settings))
    probe = {**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + "A" * 40}
    assert _reject(settings, probe, body) == "bad_signature"
    # Signed with the merchant's key instead of WeChat Pay's.
    message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode()
    forged = keys.private("merchant").sign(
        message + body + b"\n", padding.PKCS1v15(), hashes.SHA256()
    )
    wrong = {**headers, "Wechatpay-Signature": base64.b64encode(forged).decode()}
    assert _reject(settings, wrong, body) == "bad_signature"


def test_unknown_serial_and_signature_type_are_rejected(settings: Config, keys: Any) -> None:
    headers, body = _callback(settings, keys, _transaction(settings), serial="PUB_KEY_ID_OTHER")
    assert _reject(settings, headers, body) == "unknown_serial"
    headers, body = _callback(settings, keys, _transaction(settings))
    other_type = {**headers, "Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}
    assert _reject(settings, other_type, body) == "bad_signature"
    missing = {k: v for k, v in headers.items() if k != "Wechatpay-Signature"}
    assert _reject(settings, missing, body) == "bad_signature"


def test_resource_under_another_apiv3_key_fails_to_decrypt(settings: Config, keys: Any) -> None:
    headers, body = _callback(
        settings, keys, _transaction(settings), apiv3_key="another-apiv3-key-0123456789abcd"
    )
    assert _reject(settings, headers, body) == "decrypt_failed"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"appid": "wx0000000000000000"}, "wrong_app_id"),
        ({"mchid": "1900000000"}, "wrong_merchant"),
    ],
)
def test_resource_for_another_app_or_merchant_is_rejected(
    settings: Config, keys: Any, override: dict[str, str], reason: str
) -> None:
    headers, body = _callback(settings, keys, _transaction(settings, **override))
    assert _reject(settings, headers, body) == reason


@pytest.mark.parametrize("total", ["26000", 260.0, True, None])
def test_amount_must_be_an_integer(settings: Config, keys: Any, total: Any) -> None:
    resource = _transaction(settings, amount={"total": total, "currency": "CNY"})
    headers, body = _callback(settings, keys, resource)
    assert _reject(settings, headers, body) == "malformed"


def _refund_resource(settings: Config, status: str) -> dict[str, Any]:
    return {
        "mchid": settings.WECHAT_MCH_ID,
        "out_trade_no": "SSI20200101ABCDEFGHJKLMNPQR",
        "transaction_id": "4200000540202005267407409907",
        "out_refund_no": "SSR20200102ABCDEFGHJKLMNPQR",
        "refund_id": "50000000382019052709732678859",
        "refund_status": status,
        "success_time": "2020-01-02T10:00:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": 26000, "refund": 9000, "payer_total": 26000, "payer_refund": 9000},
    }


@pytest.mark.parametrize(
    ("event", "status", "state"),
    [
        ("REFUND.SUCCESS", "SUCCESS", "succeeded"),
        ("REFUND.ABNORMAL", "ABNORMAL", "failed"),
        ("REFUND.CLOSED", "CLOSED", "closed"),
    ],
)
def test_refund_callbacks(settings: Config, keys: Any, event: str, status: str, state: str) -> None:
    headers, body = _callback(settings, keys, _refund_resource(settings, status), event_type=event)
    assert _sdk_as_merchant(settings, keys).callback(headers, body) is not None
    note = WeChatV3Channel(settings).parse_notification(headers, body, "/notify/wechat/refund")
    assert note.kind == "refund" and note.refund is not None
    assert note.refund.state == state
    assert note.refund.amount_fen == 9000
    assert note.refund.out_refund_no == "SSR20200102ABCDEFGHJKLMNPQR"
    assert (note.refund.succeeded_at is not None) == (state == "succeeded")


def test_unknown_event_is_genuine_but_pending(settings: Config, keys: Any) -> None:
    headers, body = _callback(
        settings, keys, _transaction(settings), event_type="TRANSACTION.SOMETHING_NEW"
    )
    note = WeChatV3Channel(settings).parse_notification(headers, body, "/")
    assert note.kind == "pending" and note.trade is None


def test_replies(settings: Config) -> None:
    channel = WeChatV3Channel(settings)
    assert channel.success_reply().status in (200, 204)
    fail = channel.failure_reply("bad_signature")
    assert 400 <= fail.status < 600
    assert json.loads(fail.body) == {"code": "FAIL", "message": "失败"}
    assert channel.failure_reply("database_error").status >= 500
