"""WeChat Pay v2: our signing against the published vectors, and against wechatpy's own code.

PROTOCOLS.md §1.2 (signature vectors), §1.4 (paySign vector), §1.5 (notifications, HMAC with
no sign_type), §1.8 (refund req_info).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
import xmltodict
from Cryptodome.Cipher import AES
from Cryptodome.Util.Padding import pad
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.pay import WeChatPay

from api.config import Config
from api.payments.channels import ChannelError, NotificationRejected, TradeState
from api.payments.channels import wechat_v2_protocol as proto
from api.payments.channels.wechat_v2 import WeChatV2Channel

VECTOR = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
VECTOR_KEY = "192006250b4c09247ec02edce69f6a2d"


def test_md5_signature_reproduces_the_published_vector() -> None:
    assert proto.sign(VECTOR, VECTOR_KEY, proto.MD5) == "9A0A8659F005D6984697E2CA0A9CF3B7"


def test_hmac_sha256_signature_reproduces_the_published_vector() -> None:
    assert proto.sign(VECTOR, VECTOR_KEY, proto.HMAC_SHA256) == (
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    )


def test_pay_sign_reproduces_the_published_vector() -> None:
    params = {
        "appId": "wxd678efh567hg6787",
        "nonceStr": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "package": "prepay_id=wx2017033010242291fcfe0db70013231072",
        "signType": "MD5",
        "timeStamp": "1490840662",
    }
    assert proto.sign(params, "qazwsxedcrfvtgbyhnujmikolp111111") == (
        "22D9B4E54AB1950F51E0649E8810ACD6"
    )


def test_signing_skips_empty_values_and_sign_but_keeps_sign_type() -> None:
    base = proto.sign(VECTOR, VECTOR_KEY)
    assert proto.sign({**VECTOR, "attach": "", "detail": None, "sign": "X"}, VECTOR_KEY) == base
    assert proto.sign({**VECTOR, "sign_type": "MD5"}, VECTOR_KEY) != base


def _wechatpy(settings: Config) -> WeChatPay:
    return WeChatPay(settings.WECHAT_APPID, settings.WECHAT_API_KEY, settings.WECHAT_MCH_ID)


def test_adapter_pay_params_are_what_wechatpy_would_sign(settings: Config) -> None:
    channel = WeChatV2Channel(settings)
    params = channel.pay_params("wx201410272009395522657a690389285100", timestamp=1490840662)
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["signType"] == "MD5"
    assert params["timeStamp"] == "1490840662"
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100"
    assert len(params["nonceStr"]) == 32 and params["nonceStr"].isalnum()
    expected = _wechatpy(settings).jsapi.get_jsapi_signature(
        "wx201410272009395522657a690389285100",
        timestamp="1490840662",
        nonce_str=params["nonceStr"],
    )
    assert params["paySign"] == expected
    # Nonces come from `secrets`: two calls never share one.
    assert channel.pay_params("x")["nonceStr"] != channel.pay_params("x")["nonceStr"]


def _notification(settings: Config, **overrides: str) -> dict[str, str]:
    fields = {
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": "5d2b6c2a8db53831f7eda20af46e531c",
        "result_code": "SUCCESS",
        "return_code": "SUCCESS",
        "openid": "oUpF8uMEb4qRXf22hE3X68TekukE",
        "is_subscribe": "N",
        "trade_type": "JSAPI",
        "bank_type": "OTHERS",
        "total_fee": "26000",
        "fee_type": "CNY",
        "cash_fee": "26000",
        "transaction_id": "4200000540202005267407409907",
        "out_trade_no": "SSI20200101ABCDEFGHJKLMNPQR",
        "time_end": "20200101093000",
    }
    fields.update(overrides)
    return fields


def _mixed_xml(fields: dict[str, str]) -> bytes:
    """Bare total_fee, CDATA everything else: the shape of real notifications (§1.1)."""
    parts = ["<xml>\n"]
    for name, value in fields.items():
        if name == "total_fee":
            parts.append(f"  <{name}>{value}</{name}>\n")
        else:
            parts.append(f"  <{name}><![CDATA[{value}]]></{name}>\n")
    parts.append("</xml>")
    return "".join(parts).encode()


def _signed(settings: Config, sign_type: str = proto.MD5, **overrides: str) -> dict[str, str]:
    fields = _notification(settings, **overrides)
    fields["sign"] = proto.sign(fields, settings.WECHAT_API_KEY, sign_type)
    return fields


def test_wechatpy_accepts_a_notification_signed_by_us(settings: Config) -> None:
    fields = _signed(settings)
    data = _wechatpy(settings).parse_payment_result(proto.to_xml(fields))
    assert data["total_fee"] == 26000
    assert _wechatpy(settings).check_signature(fields)


def test_we_accept_md5_notifications_with_bare_and_cdata_values(settings: Config) -> None:
    channel = WeChatV2Channel(settings)
    note = channel.parse_notification({}, _mixed_xml(_signed(settings)), "/notify/wechat")
    assert note.kind == "payment"
    assert note.trade is not None
    assert note.trade.state is TradeState.PAID
    assert note.trade.amount_fen == 26000
    assert note.trade.transaction_id == "4200000540202005267407409907"
    assert note.trade.paid_at is not None and note.trade.paid_at.isoformat() == (
        "2020-01-01T01:30:00+00:00"
    )
    assert (note.trade.app_id, note.trade.merchant_id) == (
        settings.WECHAT_APPID,
        settings.WECHAT_MCH_ID,
    )


def test_sign_type_field_is_part_of_the_signature(settings: Config) -> None:
    channel = WeChatV2Channel(settings)
    # Signed with sign_type present, as WeChat does now and then (§1.2).
    fields = _notification(settings, sign_type="MD5")
    fields["sign"] = proto.sign(fields, settings.WECHAT_API_KEY)
    assert channel.parse_notification({}, proto.to_xml(fields), "/").kind == "payment"
    stripped = {k: v for k, v in fields.items() if k != "sign_type"}
    with pytest.raises(NotificationRejected) as err:
        channel.parse_notification({}, proto.to_xml(stripped), "/")
    assert err.value.reason == "bad_signature"


def test_hmac_notification_without_sign_type_wechatpy_rejects_we_accept(settings: Config) -> None:
    fields = _signed(settings, sign_type=proto.HMAC_SHA256)
    assert len(fields["sign"]) == 64 and "sign_type" not in fields
    body = _mixed_xml(fields)
    with pytest.raises(InvalidSignatureException):
        _wechatpy(settings).parse_payment_result(body)
    note = WeChatV2Channel(settings).parse_notification({}, body, "/")
    assert note.kind == "payment" and note.trade is not None
    assert note.trade.amount_fen == 26000


def test_hmac_notification_with_declared_sign_type_is_accepted(settings: Config) -> None:
    fields = _notification(settings, sign_type="HMAC-SHA256")
    fields["sign"] = proto.sign(fields, settings.WECHAT_API_KEY, proto.HMAC_SHA256)
    assert WeChatV2Channel(settings).parse_notification({}, proto.to_xml(fields), "/").trade


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"total_fee": "25999"}, "bad_signature"),  # tampered after signing
        ({"sign": "0" * 32}, "bad_signature"),
        ({"sign": ""}, "bad_signature"),
        ({"sign_type": "SHA1"}, "bad_signature"),
    ],
)
def test_tampered_notifications_are_rejected(
    settings: Config, change: dict[str, str], reason: str
) -> None:
    fields = {**_signed(settings), **change}
    with pytest.raises(NotificationRejected) as err:
        WeChatV2Channel(settings).parse_notification({}, proto.to_xml(fields), "/")
    assert err.value.reason == reason


def test_notification_signed_with_another_key_is_rejected(settings: Config) -> None:
    fields = _notification(settings)
    fields["sign"] = proto.sign(fields, "another-merchant-key-0123456789ab")
    with pytest.raises(NotificationRejected) as err:
        WeChatV2Channel(settings).parse_notification({}, proto.to_xml(fields), "/")
    assert err.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"appid": "wx0000000000000000"}, "wrong_app_id"),
        ({"mch_id": "1900000000"}, "wrong_merchant"),
    ],
)
def test_genuine_signature_for_another_app_or_merchant_is_rejected(
    settings: Config, override: dict[str, str], reason: str
) -> None:
    body = proto.to_xml(_signed(settings, **override))
    with pytest.raises(NotificationRejected) as err:
        WeChatV2Channel(settings).parse_notification({}, body, "/")
    assert err.value.reason == reason


@pytest.mark.parametrize("total_fee", ["+26000", " 26000", "260.00", "２６０００", "-1"])
def test_total_fee_must_be_plain_digits(settings: Config, total_fee: str) -> None:
    body = proto.to_xml(_signed(settings, total_fee=total_fee))
    with pytest.raises(NotificationRejected) as err:
        WeChatV2Channel(settings).parse_notification({}, body, "/")
    assert err.value.reason == "malformed"


def test_failed_payment_notification_is_genuine_but_pending(settings: Config) -> None:
    fields = _signed(settings, result_code="FAIL", err_code="BANKERROR")
    note = WeChatV2Channel(settings).parse_notification({}, proto.to_xml(fields), "/")
    assert note.kind == "pending"
    assert note.trade is not None and note.trade.state is TradeState.OPEN


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<xml><a>1</a>",
        b"<root><a>1</a></root>",
        b"<xml><a><b>1</b></a></xml>",
        b"<xml><a>1</a><a>2</a></xml>",
        b'<!DOCTYPE xml [<!ENTITY x "SUCCESS">]><xml><return_code>&x;</return_code></xml>',
        b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>',
        b"<xml>" + b"<a>1</a>" * 20000 + b"</xml>",
    ],
)
def test_malformed_or_hostile_xml_is_rejected(settings: Config, body: bytes) -> None:
    with pytest.raises(NotificationRejected) as err:
        WeChatV2Channel(settings).parse_notification({}, body, "/")
    assert err.value.reason in ("malformed", "not_success")


def test_replies_are_exact_and_wechatpy_reads_them(settings: Config) -> None:
    channel = WeChatV2Channel(settings)
    ok = channel.success_reply()
    assert ok.status == 200
    assert ok.body == (
        b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
        b"<return_msg><![CDATA[OK]]></return_msg></xml>"
    )
    assert xmltodict.parse(ok.body)["xml"] == {"return_code": "SUCCESS", "return_msg": "OK"}
    fail = channel.failure_reply("bad_signature]]><x>")
    parsed = xmltodict.parse(fail.body)["xml"]
    assert parsed["return_code"] == "FAIL"
    assert fail.body != ok.body


def _req_info(plaintext: str, api_key: str) -> str:
    """Encrypt exactly as PROTOCOLS.md §1.8 describes, with an independent library."""
    key = hashlib.md5(api_key.encode()).hexdigest().lower().encode()
    cipher = AES.new(key, AES.MODE_ECB)
    return base64.b64encode(cipher.encrypt(pad(plaintext.encode(), 16))).decode()


REFUND_ROOT = (
    "<root><out_refund_no><![CDATA[SSR20200102ABCDEFGHJKLMNPQR]]></out_refund_no>"
    "<out_trade_no><![CDATA[SSI20200101ABCDEFGHJKLMNPQR]]></out_trade_no>"
    "<refund_account><![CDATA[REFUND_SOURCE_RECHARGE_FUNDS]]></refund_account>"
    "<refund_fee><![CDATA[9000]]></refund_fee>"
    "<refund_id><![CDATA[50000408942018111907145868882]]></refund_id>"
    "<refund_recv_accout><![CDATA[支付用户零钱]]></refund_recv_accout>"
    "<refund_request_source><![CDATA[API]]></refund_request_source>"
    "<refund_status><![CDATA[SUCCESS]]></refund_status>"
    "<settlement_refund_fee><![CDATA[9000]]></settlement_refund_fee>"
    "<settlement_total_fee><![CDATA[26000]]></settlement_total_fee>"
    "<success_time><![CDATA[2020-01-02 10:00:00]]></success_time>"
    "<total_fee><![CDATA[26000]]></total_fee>"
    "<transaction_id><![CDATA[4200000540202005267407409907]]></transaction_id></root>"
)


def _refund_xml(settings: Config, req_info: str, **overrides: str) -> bytes:
    fields = {
        "return_code": "SUCCESS",
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": "0123456789abcdef0123456789abcdef",
        "req_info": req_info,
    }
    fields.update(overrides)
    return proto.to_xml(fields)


def test_refund_req_info_encrypted_per_protocol_decrypts(settings: Config) -> None:
    body = _refund_xml(settings, _req_info(REFUND_ROOT, settings.WECHAT_API_KEY))
    note = WeChatV2Channel(settings).parse_notification({}, body, "/notify/wechat/refund")
    assert note.kind == "refund" and note.refund is not None
    refund = note.refund
    assert refund.out_refund_no == "SSR20200102ABCDEFGHJKLMNPQR"
    assert refund.out_trade_no == "SSI20200101ABCDEFGHJKLMNPQR"
    assert refund.amount_fen == 9000
    assert refund.state == "succeeded"
    assert refund.succeeded_at is not None and refund.succeeded_at.hour == 2  # 10:00 Beijing
    # wechatpy's own decryptor agrees on the same ciphertext.
    decoded = _wechatpy(settings).parse_refund_notify_result(body)
    assert decoded["refund_fee"] == 9000


@pytest.mark.parametrize(("status", "state"), [("REFUNDCLOSE", "closed"), ("CHANGE", "failed")])
def test_refund_outcomes_map_to_states(settings: Config, status: str, state: str) -> None:
    root = REFUND_ROOT.replace("<![CDATA[SUCCESS]]></refund_status>", f"{status}</refund_status>")
    body = _refund_xml(settings, _req_info(root, settings.WECHAT_API_KEY))
    note = WeChatV2Channel(settings).parse_notification({}, body, "/")
    assert note.refund is not None and note.refund.state == state
    assert note.refund.succeeded_at is None


def test_refund_req_info_under_another_key_is_rejected(settings: Config) -> None:
    body = _refund_xml(settings, _req_info(REFUND_ROOT, "another-merchant-key-0123456789ab"))
    with pytest.raises(NotificationRejected) as err:
        WeChatV2Channel(settings).parse_notification({}, body, "/")
    assert err.value.reason == "decrypt_failed"


def test_refund_for_another_merchant_is_rejected(settings: Config) -> None:
    body = _refund_xml(
        settings, _req_info(REFUND_ROOT, settings.WECHAT_API_KEY), mch_id="1900000000"
    )
    with pytest.raises(NotificationRejected) as err:
        WeChatV2Channel(settings).parse_notification({}, body, "/")
    assert err.value.reason == "wrong_merchant"


def test_synchronous_response_signature_is_checked(settings: Config) -> None:
    channel = WeChatV2Channel(settings)
    response = _signed(settings, trade_state="SUCCESS")
    channel._check_response("orderquery", response)  # genuine: no error
    with pytest.raises(ChannelError) as err:
        channel._check_response("orderquery", {**response, "total_fee": "1"})
    assert err.value.code == "bad_signature" and not err.value.retryable
