"""Schemas of the payments API: one per use (create, read, query arguments)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.extensions.cursor import CursorFields
from api.extensions.smorest import Schema
from api.payments.models import NotificationOutcome, OrderStatus, RefundState
from api.payments.models.refunds import STAFF_REASONS
from api.policy import available_years

INSURANCES = ("medical", "pension")
YEAR_DOC = {"description": "缴费年度", "enum": available_years()}
# What an order may ask for: the year's insurances and/or the approved back-payments (补缴).
ORDER_PARTS = (*INSURANCES, "backpay")


class CreateOrderSchema(Schema):
    household_id = ma.fields.Integer(required=True, strict=True)
    year = ma.fields.Integer(
        required=True, strict=True, validate=validate.Range(2000, 2100), metadata=YEAR_DOC
    )
    channel = ma.fields.String(required=True, validate=validate.OneOf(("wechat", "alipay")))
    insurances = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(ORDER_PARTS)),
        required=True,
        validate=validate.Length(min=1, max=3),
        metadata={
            "description": "medical / pension: the year's premiums; backpay: every approved, "
            "unpaid back-payment (补缴) of the household's members, at the approved amounts"
        },
    )
    scene = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(("miniprogram", "wap", "qr")),
        metadata={"description": "Alipay only: miniprogram (default) | wap | qr"},
    )


class ContributionStateSchema(Schema):
    status = ma.fields.String(metadata={"description": "paid | reversed"})
    paid_at = ma.fields.DateTime()
    benefit_start = ma.fields.Date()
    late = ma.fields.Boolean()


class OrderItemSchema(Schema):
    person_id = ma.fields.Integer()
    name = ma.fields.String(metadata={"description": "姓名；除本人外脱敏显示，如 王*明"})
    is_self = ma.fields.Boolean(metadata={"description": "是否为绑定人本人"})
    birth_year = ma.fields.Integer(metadata={"description": "出生年份（区分脱敏后同名的成员）"})
    insurance = ma.fields.String()
    year = ma.fields.Integer()
    amount_fen = ma.fields.Integer()
    government_pays_fen = ma.fields.Integer()
    subsidy_fen = ma.fields.Integer()
    pension_tier = ma.fields.Integer(allow_none=True)
    late = ma.fields.Boolean()
    rule = ma.fields.String()
    kind = ma.fields.String(metadata={"description": "premium 保费 | backpay 补缴"})
    benefit_start = ma.fields.Date(
        allow_none=True, metadata={"description": "待遇开始日期（按下单日计算；以缴费记录为准）"}
    )
    contribution = ma.fields.Nested(ContributionStateSchema, allow_none=True)


class RefundItemSchema(Schema):
    person_id = ma.fields.Integer()
    insurance = ma.fields.String()
    amount_fen = ma.fields.Integer()


class RefundSchema(Schema):
    out_refund_no = ma.fields.String()
    out_trade_no = ma.fields.String()
    amount_fen = ma.fields.Integer()
    reason = ma.fields.String()
    note = ma.fields.String(allow_none=True)
    state = ma.fields.String(metadata={"enum": [s.value for s in RefundState]})
    created_at = ma.fields.DateTime()
    succeeded_at = ma.fields.DateTime(allow_none=True)
    items = ma.fields.List(ma.fields.Nested(RefundItemSchema))


class OrderSchema(Schema):
    out_trade_no = ma.fields.String()
    status = ma.fields.String(metadata={"enum": [s.value for s in OrderStatus]})
    amount_fen = ma.fields.Integer()
    refunded_fen = ma.fields.Integer()
    channel = ma.fields.String()
    scene = ma.fields.String()
    household_id = ma.fields.Integer()
    year = ma.fields.Integer()
    late = ma.fields.Boolean()
    pay_params = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        allow_none=True,
        metadata={
            "description": "WeChat: exactly the wx.requestPayment fields (timeStamp, nonceStr, "
            "package, signType, paySign); Alipay: trade_no | pay_url | qr_code. "
            "Only while the order is open."
        },
    )
    expires_at = ma.fields.DateTime()
    created_at = ma.fields.DateTime()
    paid_at = ma.fields.DateTime(allow_none=True)
    items = ma.fields.List(ma.fields.Nested(OrderItemSchema))
    refunds = ma.fields.List(ma.fields.Nested(RefundSchema))


class IdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = ma.EXCLUDE

    idempotency_key = ma.fields.String(
        data_key="Idempotency-Key",
        required=False,
        metadata={"description": "Required: the same key and body give the same answer"},
    )


# Finance ---------------------------------------------------------------------------------------


class RefundLineSchema(Schema):
    person_id = ma.fields.Integer(required=True, strict=True)
    insurance = ma.fields.String(required=True, validate=validate.OneOf(INSURANCES))
    year = ma.fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        metadata={"description": "the item's year; default the order's (补缴 items: their own)"},
    )


class StaffRefundSchema(Schema):
    out_trade_no = ma.fields.String(required=True, validate=validate.Length(1, 32))
    items = ma.fields.List(
        ma.fields.Nested(RefundLineSchema), required=True, validate=validate.Length(min=1)
    )
    reason = ma.fields.String(
        required=True, validate=validate.OneOf([str(r) for r in STAFF_REASONS])
    )
    note = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class NotificationQuerySchema(CursorFields, Schema):
    """Filters of the callback log and its cursor (`api.extensions.cursor`)."""

    class Meta:
        unknown = ma.EXCLUDE

    channel = ma.fields.String(validate=validate.OneOf(("wechat", "alipay")))
    outcome = ma.fields.String(validate=validate.OneOf([o.value for o in NotificationOutcome]))
    reason = ma.fields.String(validate=validate.Length(max=64))
    out_trade_no = ma.fields.String(validate=validate.Length(max=64))
    date_from = ma.fields.Date(metadata={"description": "Beijing date, inclusive"})
    date_to = ma.fields.Date(metadata={"description": "Beijing date, inclusive"})
    format = ma.fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))


class NotificationSchema(Schema):
    id = ma.fields.Integer()
    channel = ma.fields.String()
    path = ma.fields.String()
    received_at = ma.fields.DateTime()
    processed_at = ma.fields.DateTime(allow_none=True)
    remote_addr = ma.fields.String(allow_none=True)
    kind = ma.fields.String(allow_none=True)
    signature_valid = ma.fields.Boolean(allow_none=True)
    outcome = ma.fields.String()
    reason = ma.fields.String(allow_none=True)
    detail = ma.fields.String(allow_none=True)
    event_id = ma.fields.String(allow_none=True)
    out_trade_no = ma.fields.String(allow_none=True)
    out_refund_no = ma.fields.String(allow_none=True)
    transaction_id = ma.fields.String(allow_none=True)
    amount_fen = ma.fields.Integer(allow_none=True)
    content_type = ma.fields.String(allow_none=True)
    headers = ma.fields.Dict()
    body = ma.fields.String(attribute="body_text", metadata={"description": "raw body"})
