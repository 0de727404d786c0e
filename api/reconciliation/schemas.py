"""Schemas of the finance reconciliation API (对账)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.extensions.cursor import CursorFields
from api.extensions.smorest import Schema
from api.reconciliation.models import OUTCOMES, ItemStatus, Resolution

CHANNELS = ("wechat", "alipay")


class RunQuerySchema(CursorFields, Schema):
    class Meta:
        unknown = ma.EXCLUDE

    channel = ma.fields.String(validate=validate.OneOf(CHANNELS))


class RunSchema(Schema):
    id = ma.fields.Integer()
    channel = ma.fields.String()
    bill_date = ma.fields.Date()
    status = ma.fields.String()
    source = ma.fields.String(metadata={"description": "channel | file"})
    bill_sha256 = ma.fields.String()
    bill_size = ma.fields.Integer()
    fetched_at = ma.fields.DateTime()
    bill_rows = ma.fields.Integer()
    bill_total_fen = ma.fields.Integer()
    bill_refund_fen = ma.fields.Integer()
    bill_fee_fen = ma.fields.Integer()
    our_total_fen = ma.fields.Integer()
    our_refund_fen = ma.fields.Integer()
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    runs = ma.fields.Integer(metadata={"description": "how many times the date was (re-)run"})
    finished_at = ma.fields.DateTime()


class ItemQuerySchema(CursorFields, Schema):
    class Meta:
        unknown = ma.EXCLUDE

    status = ma.fields.String(validate=validate.OneOf([s.value for s in ItemStatus]))
    type = ma.fields.String(validate=validate.OneOf(OUTCOMES))
    channel = ma.fields.String(validate=validate.OneOf(CHANNELS))
    date = ma.fields.Date()


class ItemSchema(Schema):
    id = ma.fields.Integer()
    run_id = ma.fields.Integer()
    channel = ma.fields.String()
    bill_date = ma.fields.Date()
    side = ma.fields.String()
    type = ma.fields.String(metadata={"enum": list(OUTCOMES)})
    out_trade_no = ma.fields.String()
    out_refund_no = ma.fields.String(allow_none=True)
    bill_amount_fen = ma.fields.Integer(allow_none=True)
    our_amount_fen = ma.fields.Integer(allow_none=True)
    bill_status = ma.fields.String(allow_none=True)
    our_status = ma.fields.String(allow_none=True)
    heal_result = ma.fields.String(allow_none=True)
    status = ma.fields.String()
    resolution = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    assignee = ma.fields.String(allow_none=True)
    maker = ma.fields.String(allow_none=True)
    checker = ma.fields.String(allow_none=True)
    refund_out_refund_no = ma.fields.String(
        allow_none=True,
        metadata={"description": "the refund an approved `refund` decided (status refund_pending)"},
    )
    refund_amount_fen = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()
    resolved_at = ma.fields.DateTime(allow_none=True)


class EventSchema(Schema):
    actor = ma.fields.String()
    action = ma.fields.String()
    from_status = ma.fields.String(allow_none=True)
    to_status = ma.fields.String(allow_none=True)
    comment = ma.fields.String(allow_none=True)
    at = ma.fields.DateTime()


class ItemDetailSchema(ItemSchema):
    history = ma.fields.List(ma.fields.Nested(EventSchema))


class ResolveSchema(Schema):
    action = ma.fields.String(required=True, validate=validate.OneOf([r.value for r in Resolution]))
    reason = ma.fields.String(required=True, validate=validate.Length(1, 500))


class ApproveSchema(Schema):
    approve = ma.fields.Boolean(load_default=True)
    note = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class AssignSchema(Schema):
    assignee = ma.fields.String(required=True, validate=validate.Length(1, 64))


class CommentSchema(Schema):
    comment = ma.fields.String(required=True, validate=validate.Length(1, 1000))


class ExportQuerySchema(Schema):
    class Meta:
        unknown = ma.EXCLUDE

    format = ma.fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))


class ThreeWayQuerySchema(Schema):
    class Meta:
        unknown = ma.EXCLUDE

    date = ma.fields.Date(required=True)
    channel = ma.fields.String(validate=validate.OneOf(CHANNELS))
