"""Notifications built exactly as the gateways build them, for tests that post them directly.

WeChat Pay v2 (PROTOCOLS.md §1.5): flat XML, MD5 signature with the API v2 key. Alipay (§5.5):
a form body, RSA2 over the sorted `k=v` string without `sign`/`sign_type`, with the gateway's
private key (the sandbox's, whose public half the app is configured with).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from api.clock import BEIJING
from api.config import SANDBOX_KEYS, Config
from api.payments.channels import wechat_v2_protocol as proto
from api.payments.money import fen_to_yuan_str


def wechat_v2_payment(
    settings: Config,
    *,
    out_trade_no: str,
    amount_fen: int,
    transaction_id: str = "4200000540202005267407409907",
    key: str | None = None,
    appid: str | None = None,
    mch_id: str | None = None,
    result_code: str = "SUCCESS",
) -> bytes:
    fields = {
        "return_code": "SUCCESS",
        "appid": appid or settings.WECHAT_APPID,
        "mch_id": mch_id or settings.WECHAT_MCH_ID,
        "nonce_str": proto.new_nonce(),
        "result_code": result_code,
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "is_subscribe": "N",
        "trade_type": "JSAPI",
        "bank_type": "CMC",
        "total_fee": str(amount_fen),
        "fee_type": "CNY",
        "cash_fee": str(amount_fen),
        "transaction_id": transaction_id,
        "out_trade_no": out_trade_no,
        "time_end": datetime.now(UTC).astimezone(BEIJING).strftime("%Y%m%d%H%M%S"),
    }
    fields["sign"] = proto.sign(fields, key or settings.WECHAT_API_KEY)
    return proto.to_xml(fields)


def _alipay_private_key(path: Path | None = None) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(
        (path or SANDBOX_KEYS / "alipay_private_key.pem").read_bytes(), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def alipay_notification(
    settings: Config,
    *,
    out_trade_no: str,
    amount_fen: int,
    trade_status: str = "TRADE_SUCCESS",
    trade_no: str = "2019082622001430620542154863",
    app_id: str | None = None,
    seller_id: str | None = None,
    key_path: Path | None = None,
    extra: dict[str, str] | None = None,
) -> bytes:
    now = datetime.now(UTC).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    fields = {
        "notify_time": now,
        "notify_type": "trade_status_sync",
        "notify_id": "ac05099524730693a8b330c5ecf72da9786",
        "app_id": app_id or settings.ALIPAY_APPID,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": trade_no,
        "out_trade_no": out_trade_no,
        "buyer_id": "2088102122524333",
        "seller_id": seller_id or settings.ALIPAY_SELLER_ID,
        "trade_status": trade_status,
        "total_amount": fen_to_yuan_str(amount_fen),
        "gmt_create": now,
        "gmt_payment": now,
        **(extra or {}),
    }
    message = "&".join(f"{k}={fields[k]}" for k in sorted(fields)).encode()
    signature = _alipay_private_key(key_path).sign(message, padding.PKCS1v15(), hashes.SHA256())
    fields["sign_type"] = "RSA2"
    fields["sign"] = base64.b64encode(signature).decode()
    return urlencode(fields).encode()
