"""Schemas of the back-payment API: create, withdraw, list arguments, read."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.backpay.models import BackpayStatus
from api.extensions.cursor import MAX_LIMIT, CursorFields
from api.extensions.smorest import Schema


class YearAmountSchema(Schema):
    year = ma.fields.Integer(required=True, strict=True, metadata={"description": "补缴年度"})
    amount_fen = ma.fields.Integer(
        required=True, strict=True, metadata={"description": "核定金额（分），以核定文书为准"}
    )


class ApprovalCreateSchema(Schema):
    person_id = ma.fields.Integer(required=True, strict=True)
    insurance = ma.fields.String(required=True, validate=validate.OneOf(("pension", "medical")))
    years = ma.fields.List(
        ma.fields.Nested(YearAmountSchema), required=True, validate=validate.Length(min=1, max=30)
    )
    pension_tier = ma.fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        metadata={"description": "养老保险：核定文书所定缴费档次（元），税务记录必需；医疗为空"},
    )
    document_no = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "核定文书编号"},
    )
    expires_on = ma.fields.Date(required=True, metadata={"description": "有效期至（含当日）"})


class WithdrawSchema(Schema):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))


class ApprovalQuerySchema(CursorFields, Schema):
    """Filters and cursor (`api.extensions.cursor`); a page holds 500 unless `limit` says."""

    limit = ma.fields.Integer(load_default=MAX_LIMIT, validate=validate.Range(1, MAX_LIMIT))
    person_id = ma.fields.Integer(load_default=None)
    status = ma.fields.String(
        load_default=None, validate=validate.OneOf([s.value for s in BackpayStatus])
    )


class ApprovalSchema(Schema):
    id = ma.fields.Integer(required=True)
    person_id = ma.fields.Integer(required=True)
    insurance = ma.fields.String(required=True)
    year = ma.fields.Integer(required=True)
    amount_fen = ma.fields.Integer(required=True)
    pension_tier = ma.fields.Integer(allow_none=True)
    document_no = ma.fields.String(required=True)
    expires_on = ma.fields.Date(required=True)
    bureau = ma.fields.String(required=True)
    status = ma.fields.String(
        required=True, metadata={"description": "approved | paid | withdrawn"}
    )
    approved_by = ma.fields.Integer()
    approved_at = ma.fields.DateTime()
    withdrawn_at = ma.fields.DateTime(allow_none=True)
    withdrawal_reason = ma.fields.String(allow_none=True)
    paid_at = ma.fields.DateTime(allow_none=True)
    contribution_id = ma.fields.Integer(allow_none=True)


class ApprovalListSchema(Schema):
    approvals = ma.fields.List(ma.fields.Nested(ApprovalSchema), required=True)
    next_cursor = ma.fields.String(
        allow_none=True, metadata={"description": "下一页的 cursor；最后一页为 null"}
    )
