"""Schemas of the collection API (代办员收款): the contract and the OpenAPI document."""

from __future__ import annotations

import marshmallow as ma

from api.extensions.cursor import CursorFields
from api.extensions.smorest import Schema
from api.households.schemas import (
    YEAR_DOC,
    HouseholdMemberPremiumSchema,
    PensionQuoteSchema,
    StrictInteger,
    TotalsSchema,
)

_YEAR = ma.validate.Range(min=2000, max=2100, error="年度超出范围")
_INSURANCES = ma.validate.OneOf(("medical", "pension"), error="险种应为 medical 或 pension")
HOUSEHOLD_NO = ma.validate.Length(min=1, max=32, error="户号应为 1–32 个字符")
RECEIPT_NO = ma.validate.Length(min=1, max=32)


class CollectableQuerySchema(Schema):
    household_no = ma.fields.String(
        required=True, validate=HOUSEHOLD_NO, metadata={"description": "本村居的户号"}
    )
    year = ma.fields.Integer(required=True, validate=_YEAR, metadata=YEAR_DOC)


class StaffPensionSchema(PensionQuoteSchema):
    allowed_tiers = ma.fields.List(
        ma.fields.Integer(), metadata={"description": "该成员可选的缴费档次（元）"}
    )


class CollectableMemberSchema(HouseholdMemberPremiumSchema):
    pension = ma.fields.Nested(StaffPensionSchema, required=True)


class CollectionPlaceSchema(Schema):
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)


class CollectableSchema(Schema):
    household_id = ma.fields.Integer(required=True, metadata={"description": "收款时提交的户 id"})
    household_no = ma.fields.String(required=True)
    village = ma.fields.Nested(CollectionPlaceSchema, required=True)
    town = ma.fields.Nested(CollectionPlaceSchema, required=True)
    year = ma.fields.Integer(required=True)
    as_of = ma.fields.Date(required=True, metadata={"description": "计算日期（北京时间）"})
    late = ma.fields.Boolean(required=True)
    collection_open = ma.fields.Boolean(required=True)
    members = ma.fields.List(
        ma.fields.Nested(CollectableMemberSchema),
        required=True,
        metadata={"description": "成员（姓名、身份证号码脱敏），与缴费页相同的应缴与状态"},
    )
    totals = ma.fields.Nested(TotalsSchema, required=True)


class CollectItemSchema(Schema):
    person_id = StrictInteger(required=True)
    insurances = ma.fields.List(
        ma.fields.String(validate=_INSURANCES),
        required=True,
        validate=ma.validate.Length(min=1, max=2),
        metadata={"description": "收取的险种：medical、pension"},
    )
    pension_tier = StrictInteger(
        load_default=None,
        allow_none=True,
        metadata={"description": "养老保险缴费档次（元）；不填则用已选档次"},
    )


class CollectSchema(Schema):
    household_id = StrictInteger(required=True)
    year = StrictInteger(required=True, validate=_YEAR, metadata=YEAR_DOC)
    items = ma.fields.List(
        ma.fields.Nested(CollectItemSchema),
        required=True,
        validate=ma.validate.Length(min=1, max=30),
        metadata={"description": "所收人员与险种；金额由服务器按政策计算，不能填写"},
    )


class ReceiptLineSchema(Schema):
    person_id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True, metadata={"description": "姓名（脱敏）"})
    id_number = ma.fields.String(required=True, metadata={"description": "身份证号码（脱敏）"})
    insurance = ma.fields.String(required=True)
    insurance_name = ma.fields.String(required=True)
    pension_tier = ma.fields.Integer(allow_none=True)
    amount_fen = ma.fields.Integer(required=True)


class StaffNameSchema(Schema):
    username = ma.fields.String(required=True)
    display_name = ma.fields.String(required=True)


class ReceiptSchema(Schema):
    receipt_no = ma.fields.String(
        required=True, metadata={"description": "收据号：村居代码-年度-6位序号，村居内连续"}
    )
    title = ma.fields.String(required=True)
    year = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True, metadata={"description": "issued | voided"})
    household_id = ma.fields.Integer(required=True)
    household_no = ma.fields.String(allow_none=True)
    village = ma.fields.Nested(CollectionPlaceSchema, allow_none=True)
    town = ma.fields.Nested(CollectionPlaceSchema, allow_none=True)
    amount_fen = ma.fields.Integer(required=True)
    amount_in_capitals = ma.fields.String(required=True, metadata={"description": "金额大写"})
    issued_on = ma.fields.Date(required=True, metadata={"description": "开具日期（北京时间）"})
    issued_at = ma.fields.DateTime(required=True)
    agent = ma.fields.Nested(StaffNameSchema, allow_none=True)
    void_reason = ma.fields.String(allow_none=True)
    voided_at = ma.fields.DateTime(allow_none=True)
    voided_by = ma.fields.Nested(StaffNameSchema, allow_none=True)
    lines = ma.fields.List(ma.fields.Nested(ReceiptLineSchema))


class ReceiptQuerySchema(CursorFields, Schema):
    year = ma.fields.Integer(load_default=None, validate=_YEAR)
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(("issued", "voided")))
    village_code = ma.fields.String(load_default=None, validate=ma.validate.Length(max=16))
    household_no = ma.fields.String(load_default=None, validate=HOUSEHOLD_NO)


class ReceiptListSchema(Schema):
    receipts = ma.fields.List(ma.fields.Nested(ReceiptSchema), required=True)
    next_cursor = ma.fields.String(allow_none=True, required=True)


class VoidSchema(Schema):
    reason = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=2, max=200, error="作废原因应为 2–200 个字符"),
        metadata={"description": "作废原因（必填，记入收据与审计日志）"},
    )
