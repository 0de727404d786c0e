"""WeChat Pay v2 notifications: the payment result (§1.5) and the refund result (§1.8).

Shapes reproduced on purpose, because they trip real merchants:
- values are mostly CDATA but `total_fee` is bare (§1.1, §1.5);
- an MD5 order's notification carries `sign_type` only sometimes (it is then signed, §1.2);
- an HMAC-SHA256 order's notification has a 64-character sign and **no** sign_type (§1.5),
  which wechatpy's MD5-only `parse_payment_result` rejects (§0.2);
- refund notifications have no sign: `req_info` is AES-256-ECB under md5hex(API key) with
  PKCS7(128) padding (§1.8).
"""

from __future__ import annotations

from sandbox import crypto, ids
from sandbox.clock import compact, dashed
from sandbox.context import Sandbox
from sandbox.notifier import WECHAT_RETRY_SCHEDULE, Attempt, Delivery, Tamper
from sandbox.store import Order, Refund
from sandbox.wechat_v2_wire import is_success_ack, render

WRONG_APPID = "wx0000000000000001"
WRONG_MCH_ID = "1900000999"
_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "User-Agent": "Mozilla/4.0"}


def _includes_sign_type(order: Order) -> bool:
    """ "Sometimes": deterministic per order, so a test can see both shapes (§1.2)."""
    return int((order.transaction_id or "0")[-1]) % 2 == 0


def payment(sandbox: Sandbox, order: Order, tamper: Tamper) -> Delivery | None:
    """The v2 payment-result notification for a paid order."""
    if not order.notify_url or order.paid_at is None or order.transaction_id is None:
        return None
    fee = order.amount_fen + tamper.amount_delta_fen
    fields: dict[str, str] = {
        "appid": WRONG_APPID if tamper.wrong_appid else order.app_id,
        "bank_type": "OTHERS",
        "cash_fee": str(fee),
        "fee_type": "CNY",
        "is_subscribe": "N",
        "mch_id": WRONG_MCH_ID if tamper.wrong_mch else order.merchant_id,
        "openid": order.payer_id or "",
        "out_trade_no": order.out_trade_no,
        "result_code": "SUCCESS",
        "return_code": "SUCCESS",
        "time_end": compact(order.paid_at),
        "total_fee": str(fee),
        "trade_type": order.trade_type,
        "transaction_id": order.transaction_id,
        "attach": order.attach or "",
    }
    hmac_order = order.sign_type == crypto.HMAC_SHA256
    if not hmac_order and _includes_sign_type(order):
        fields["sign_type"] = crypto.MD5
    key = order.sign_key or sandbox.settings.WECHAT_API_KEY
    if tamper.forge_signature:
        key = "forged" + key[6:]

    def build() -> Attempt:
        body = {k: v for k, v in fields.items() if v}
        body["nonce_str"] = ids.nonce(32)
        body["sign"] = crypto.v2_sign(body, key, order.sign_type)
        return Attempt(render(body, bare={"total_fee"}), dict(_HEADERS))

    return Delivery(
        channel="wechat",
        api="v2",
        kind="payment",
        out_trade_no=order.out_trade_no,
        url=order.notify_url,
        event_id=order.transaction_id,
        build=build,
        accepts=is_success_ack,
        schedule=WECHAT_RETRY_SCHEDULE,
    )


def refund(sandbox: Sandbox, order: Order, refund: Refund, tamper: Tamper) -> Delivery | None:
    """The v2 refund-result notification: outer XML unsigned, details in `req_info` (§1.8)."""
    if not refund.notify_url or refund.succeeded_at is None:
        return None
    plain = {
        "out_refund_no": refund.out_refund_no,
        "out_trade_no": order.out_trade_no,
        "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS",
        "refund_fee": str(refund.amount_fen + tamper.amount_delta_fen),
        "refund_id": refund.refund_id,
        "refund_recv_accout": "支付用户零钱",  # sic: WeChat's spelling (§1.8)
        "refund_request_source": "API",
        "refund_status": "SUCCESS",
        "settlement_refund_fee": str(refund.amount_fen + tamper.amount_delta_fen),
        "settlement_total_fee": str(order.amount_fen),
        "success_time": dashed(refund.succeeded_at),
        "total_fee": str(order.amount_fen),
        "transaction_id": order.transaction_id or "",
    }
    inner = render(plain, bare={"refund_fee", "settlement_refund_fee", "total_fee"})
    inner = b"<root>" + inner[len(b"<xml>") : -len(b"</xml>")] + b"</root>"
    api_key = order.sign_key or sandbox.settings.WECHAT_API_KEY
    key = crypto.v2_refund_key("forged" + api_key if tamper.forge_signature else api_key)

    def build() -> Attempt:
        outer = {
            "return_code": "SUCCESS",
            "appid": WRONG_APPID if tamper.wrong_appid else order.app_id,
            "mch_id": WRONG_MCH_ID if tamper.wrong_mch else order.merchant_id,
            "nonce_str": ids.nonce(32),
            "req_info": crypto.aes_ecb_encrypt(inner, key),
        }
        return Attempt(render(outer), dict(_HEADERS))

    return Delivery(
        channel="wechat",
        api="v2",
        kind="refund",
        out_trade_no=order.out_trade_no,
        url=refund.notify_url,
        event_id=refund.refund_id,
        build=build,
        accepts=is_success_ack,
        schedule=WECHAT_RETRY_SCHEDULE,
    )
