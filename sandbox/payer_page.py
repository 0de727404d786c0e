"""The payer page (收银台): what the resident would see for a pending order.

`GET /sandbox/pay/{channel}/{out_trade_no}` shows 商户, 金额 (yuan), 商品描述 and the buttons
确认支付 / 取消, which POST back with `action=pay|cancel`. Opening an Alipay precreate page
counts as scanning the QR code, which is when Alipay creates the trade (§5.6).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template_string, request

from sandbox import payments
from sandbox.bills import yuan
from sandbox.context import current
from sandbox.store import OPEN, Order

bp = Blueprint("payer_page", __name__)

MERCHANTS = {"wechat": "微信支付", "alipay": "支付宝"}

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ brand }} · 沙箱收银台</title>
<style>
 body { font-family: -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif;
        background: #f2f2f2; margin: 0; padding: 24px; color: #222; }
 .card { max-width: 420px; margin: 0 auto; background: #fff; border-radius: 12px;
         padding: 24px; box-shadow: 0 1px 4px rgba(0,0,0,.08); }
 .brand { color: {{ color }}; font-weight: 600; }
 .amount { font-size: 40px; font-weight: 600; text-align: center; margin: 16px 0; }
 dl { display: grid; grid-template-columns: 6em 1fr; gap: 8px; }
 dt { color: #888; } dd { margin: 0; word-break: break-all; }
 button { width: 100%; padding: 12px; border: 0; border-radius: 8px; font-size: 17px;
          margin-top: 12px; cursor: pointer; }
 .pay { background: {{ color }}; color: #fff; } .cancel { background: #eee; }
 .note { color: #888; font-size: 13px; margin-top: 16px; }
 .result { text-align: center; font-size: 20px; margin: 16px 0; }
</style>
</head>
<body>
<div class="card">
  <div class="brand">{{ brand }}（沙箱）</div>
  {% if message %}<div class="result" id="result">{{ message }}</div>{% endif %}
  <div class="amount">¥{{ amount }}</div>
  <dl>
    <dt>商户</dt><dd>{{ merchant }}</dd>
    <dt>金额</dt><dd>{{ amount }} 元</dd>
    <dt>商品描述</dt><dd>{{ order.description }}</dd>
    <dt>商户订单号</dt><dd>{{ order.out_trade_no }}</dd>
    <dt>订单状态</dt><dd id="state">{{ state }}</dd>
  </dl>
  {% if payable %}
  <form method="post">
    <button class="pay" name="action" value="pay" type="submit">确认支付</button>
    <button class="cancel" name="action" value="cancel" type="submit">取消</button>
  </form>
  {% endif %}
  <p class="note">这是本地支付沙箱，不会产生真实扣款。</p>
</div>
</body>
</html>
"""

STATES = {"OPEN": "待支付", "PAID": "已支付", "CLOSED": "已关闭"}


def _render(order: Order, message: str = "", status: int = 200) -> Response:
    s = current().settings
    merchant = (
        f"社保费缴纳（商户号 {s.WECHAT_MCH_ID}）"
        if order.channel == "wechat"
        else f"社保费缴纳（{s.ALIPAY_SELLER_ID}）"
    )
    html = render_template_string(
        PAGE,
        brand=MERCHANTS[order.channel],
        color="#07c160" if order.channel == "wechat" else "#1677ff",
        order=order,
        amount=yuan(order.amount_fen),
        merchant=merchant,
        state=STATES.get(order.state, order.state),
        payable=order.state == OPEN,
        message=message,
    )
    return Response(html, status=status, content_type="text/html; charset=utf-8")


def _order(channel: str, out_trade_no: str) -> Order:
    if channel not in MERCHANTS:
        abort(404)
    order = current().store.get(channel, out_trade_no)
    if order is None:
        abort(404, description="订单不存在")
    return order


@bp.get("/sandbox/pay/<channel>/<out_trade_no>")
def show(channel: str, out_trade_no: str) -> Response:
    order = _order(channel, out_trade_no)
    with current().store.lock:
        order.scanned = True  # an Alipay QR code has now been scanned (§5.6)
    return _render(order)


@bp.post("/sandbox/pay/<channel>/<out_trade_no>")
def act(channel: str, out_trade_no: str) -> Response:
    order = _order(channel, out_trade_no)
    action = request.form.get("action", "")
    sandbox = current()
    try:
        if action == "pay":
            payments.pay(sandbox, channel, out_trade_no)
            return _render(order, "支付成功")
        if action == "cancel":
            payments.cancel(sandbox, channel, out_trade_no)
            return _render(order, "已取消支付")
    except payments.PaymentRefused as refused:
        return _render(order, refused.message, status=409)
    abort(400, description="action 须为 pay 或 cancel")
