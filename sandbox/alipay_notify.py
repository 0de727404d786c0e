"""Alipay asynchronous notifications (`trade_status_sync`, PROTOCOLS.md §5.5).

Form POST, UTF-8; no empty fields (python-alipay-sdk's `verify()` would otherwise fail);
`notify_id` stable across retries of one notification; signed without `sign` and
`sign_type`. Payments notify TRADE_SUCCESS; refunds notify TRADE_SUCCESS with `refund_fee`
(cumulative) for a partial refund and TRADE_CLOSED with `refund_fee` + `gmt_refund` for a
full one (§5.5). The merchant must answer exactly `success`; anything else is retried.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from sandbox import crypto, ids
from sandbox.alipay_wire import fen_to_yuan, notification_string_to_sign
from sandbox.clock import dashed
from sandbox.context import Sandbox
from sandbox.notifier import ALIPAY_RETRY_SCHEDULE, Attempt, Delivery, Tamper
from sandbox.store import Order, Refund

WRONG_APP_ID = "2021000000000999"
WRONG_SELLER_ID = "2088000000000999"
_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    "User-Agent": "Mozilla/4.0",
}


def is_success_ack(status: int, body: bytes) -> bool:
    """Only the 7 characters `success` stop the retries (§5.5)."""
    return status == 200 and body == b"success"


def _base(order: Order, tamper: Tamper, amount_fen: int) -> dict[str, str]:
    buyer = order.payer_id or ""
    paid = fen_to_yuan(amount_fen)
    app_id = WRONG_APP_ID if tamper.wrong_appid else order.app_id
    fields: dict[str, str] = {
        "app_id": app_id,
        "auth_app_id": app_id,
        "charset": "utf-8",
        "version": "1.0",
        "notify_type": "trade_status_sync",
        "trade_no": order.transaction_id or "",
        "out_trade_no": order.out_trade_no,
        "buyer_id": buyer,
        "buyer_logon_id": order.extra.get("buyer_logon_id") or ids.alipay_logon_id(buyer),
        "seller_id": WRONG_SELLER_ID if tamper.wrong_mch else order.merchant_id,
        "seller_email": "shanting-ssi@sandbox.example",
        "total_amount": paid,
        "receipt_amount": paid,
        "invoice_amount": paid,
        "buyer_pay_amount": paid,
        "point_amount": "0.00",
        "subject": order.description,
        "gmt_create": dashed(order.created_at),
        "gmt_payment": dashed(order.paid_at) if order.paid_at else "",
        "fund_bill_list": json.dumps(
            [{"amount": paid, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")
        ),
        "passback_params": order.attach or "",
    }
    return fields


def _delivery(
    sandbox: Sandbox, order: Order, fields: dict[str, Any], kind: str, tamper: Tamper
) -> Delivery | None:
    if not order.notify_url:
        return None
    notify_id = ids.alipay_notify_id()  # stable across the retries of this notification
    key_file = "alipay_app_private_key.pem" if tamper.forge_signature else "alipay_private_key.pem"
    key = crypto.load_private_key(sandbox.settings.key_path(key_file))

    def build() -> Attempt:
        body = {k: str(v) for k, v in fields.items() if v not in (None, "")}
        body["notify_id"] = notify_id
        body["notify_time"] = dashed(sandbox.clock.now())
        body["sign_type"] = "RSA2"
        body["sign"] = crypto.rsa_sign(key, notification_string_to_sign(body).encode("utf-8"))
        return Attempt(urlencode(body).encode("ascii"), dict(_HEADERS))

    return Delivery(
        channel="alipay",
        api="alipay",
        kind=kind,
        out_trade_no=order.out_trade_no,
        url=order.notify_url,
        event_id=notify_id,
        build=build,
        accepts=is_success_ack,
        schedule=ALIPAY_RETRY_SCHEDULE,
    )


def payment(sandbox: Sandbox, order: Order, tamper: Tamper) -> Delivery | None:
    if order.paid_at is None:
        return None
    fields = _base(order, tamper, order.amount_fen + tamper.amount_delta_fen)
    fields["trade_status"] = "TRADE_SUCCESS"
    return _delivery(sandbox, order, fields, "payment", tamper)


def refund(sandbox: Sandbox, order: Order, refund: Refund, tamper: Tamper) -> Delivery | None:
    """`refund_fee` is the trade's cumulative refund after this one (退款总金额)."""
    with sandbox.store.lock:
        cumulative = sum(
            r.amount_fen
            for r in order.refunds.values()
            if r.status == "SUCCESS" and r.created_at <= refund.created_at
        )
    fields = _base(order, tamper, order.amount_fen)
    fields.update(
        trade_status="TRADE_CLOSED" if cumulative >= order.amount_fen else "TRADE_SUCCESS",
        out_biz_no=refund.out_refund_no,
        refund_fee=fen_to_yuan(cumulative + tamper.amount_delta_fen),
        gmt_refund=dashed(refund.succeeded_at or refund.created_at),
    )
    if cumulative >= order.amount_fen:
        fields["gmt_close"] = fields["gmt_refund"]
    return _delivery(sandbox, order, fields, "refund", tamper)
