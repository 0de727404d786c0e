"""WeChat Pay v3 callbacks (PROTOCOLS.md §2.4): JSON envelope, resource AES-256-GCM under the
APIv3 key (12-character nonce, short associated_data), signed with the "WeChat Pay public
key" pair and sent with every `Wechatpay-*` header including
`Wechatpay-Signature-Type: WECHATPAY2-SHA256-RSA2048` (wechatpayv3 raises without it, §0.8).
Acknowledged by HTTP 200 or 204 only; anything else is retried (§2.4).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from sandbox import crypto, ids
from sandbox.clock import rfc3339
from sandbox.context import Sandbox
from sandbox.notifier import WECHAT_RETRY_SCHEDULE, Attempt, Delivery, Tamper
from sandbox.store import Order, Refund
from sandbox.wechat_v2_notify import WRONG_APPID, WRONG_MCH_ID
from sandbox.wechat_v3 import signature_headers, transaction_json

PROBE_PREFIX = "WECHATPAY/SIGNTEST/"  # seen in third-party code only (§2.3, UNVERIFIED)


def is_success_ack(status: int, body: bytes) -> bool:
    return status in (200, 204)


def _delivery(
    sandbox: Sandbox,
    order: Order,
    url: str | None,
    *,
    kind: str,
    event_type: str,
    summary: str,
    original_type: str,
    resource: dict[str, Any],
    tamper: Tamper,
) -> Delivery | None:
    if not url:
        return None
    now = sandbox.clock.now()
    event_id = ids.v3_event_id(now)
    nonce = ids.nonce(12)
    ciphertext = crypto.aes_gcm_encrypt(
        json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        key=sandbox.settings.WECHAT_APIV3_KEY,
        nonce=nonce,
        associated_data=original_type,
    )
    envelope = {
        "id": event_id,
        "create_time": rfc3339(now),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext,
            "associated_data": original_type,
            "nonce": nonce,
        },
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def build() -> Attempt:
        headers = signature_headers(sandbox, body, forged=tamper.forge_signature)
        if tamper.probe:
            fake = base64.b64encode(secrets.token_bytes(256)).decode("ascii")
            headers["Wechatpay-Signature"] = PROBE_PREFIX + fake
        headers.update({"Content-Type": "application/json", "User-Agent": "Mozilla/4.0"})
        return Attempt(body, headers)

    return Delivery(
        channel="wechat",
        api="v3",
        kind=kind,
        out_trade_no=order.out_trade_no,
        url=url,
        event_id=event_id,
        build=build,
        accepts=is_success_ack,
        schedule=WECHAT_RETRY_SCHEDULE,
    )


def payment(sandbox: Sandbox, order: Order, tamper: Tamper) -> Delivery | None:
    """TRANSACTION.SUCCESS with the transaction object (§2.4)."""
    if order.paid_at is None:
        return None
    with sandbox.store.lock:
        resource = transaction_json(order)
    resource["trade_state"] = "SUCCESS"
    resource["trade_state_desc"] = "支付成功"
    if tamper.amount_delta_fen:
        total = order.amount_fen + tamper.amount_delta_fen
        resource["amount"].update(total=total, payer_total=total)
    if tamper.wrong_appid:
        resource["appid"] = WRONG_APPID
    if tamper.wrong_mch:
        resource["mchid"] = WRONG_MCH_ID
    return _delivery(
        sandbox,
        order,
        order.notify_url,
        kind="payment",
        event_type="TRANSACTION.SUCCESS",
        summary="支付成功",
        original_type="transaction",
        resource=resource,
        tamper=tamper,
    )


def refund(sandbox: Sandbox, order: Order, refund: Refund, tamper: Tamper) -> Delivery | None:
    """REFUND.SUCCESS; field list after the v3 refund query (§2.4: UNVERIFIED in detail)."""
    if refund.succeeded_at is None:
        return None
    amount = refund.amount_fen + tamper.amount_delta_fen
    resource = {
        "mchid": WRONG_MCH_ID if tamper.wrong_mch else order.merchant_id,
        "out_trade_no": order.out_trade_no,
        "transaction_id": order.transaction_id,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_status": "SUCCESS",
        "success_time": rfc3339(refund.succeeded_at),
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": order.amount_fen,
            "refund": amount,
            "payer_total": order.amount_fen,
            "payer_refund": amount,
        },
    }
    return _delivery(
        sandbox,
        order,
        refund.notify_url,
        kind="refund",
        event_type="REFUND.SUCCESS",
        summary="退款成功",
        original_type="refund",
        resource=resource,
        tamper=tamper,
    )
