"""Schemas of the department API: upload form, preview, apply result, batches."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.departments.models import BatchStatus, LineKind, UploadStatus
from api.extensions.smorest import Schema


class UploadFormSchema(Schema):
    """The multipart form of an upload. `file` is documented here and read from the request's
    files by the route (one requestBody: flask-smorest documents one location per body)."""

    file = ma.fields.Raw(
        load_default=None,
        metadata={
            "type": "string",
            "format": "binary",
            "description": "名单文件（CSV 或 XLSX），必填",
        },
    )
    year = ma.fields.Integer(
        required=True, validate=validate.Range(2000, 2100), metadata={"description": "保险年度"}
    )
    categories = ma.fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata={
            "description": "本次名单覆盖的类别（逗号分隔，可空：取文件中出现的类别）；"
            "列出而文件中没有的类别将被清空"
        },
    )


class UploadQuerySchema(Schema):
    kind = ma.fields.String(load_default=None, validate=validate.OneOf([k.value for k in LineKind]))


class UploadListQuerySchema(Schema):
    status = ma.fields.String(
        load_default=None, validate=validate.OneOf([s.value for s in UploadStatus])
    )


class PreviewLineSchema(Schema):
    line = ma.fields.Integer(allow_none=True, metadata={"description": "文件行号；removed 为空"})
    kind = ma.fields.String(
        metadata={
            "description": "added | removed | unchanged | not_in_roster | name_mismatch | "
            "bad_id | bad_row | age_mismatch"
        }
    )
    category = ma.fields.String()
    id_number = ma.fields.String(metadata={"description": "脱敏身份证号"})
    name = ma.fields.String(metadata={"description": "脱敏姓名"})
    effective_on = ma.fields.Date(allow_none=True)
    document_no = ma.fields.String()
    message = ma.fields.String()


class UploadSchema(Schema):
    id = ma.fields.Integer()
    department = ma.fields.String()
    year = ma.fields.Integer()
    categories = ma.fields.List(ma.fields.String())
    file_name = ma.fields.String()
    status = ma.fields.String(
        metadata={"description": "preview | awaiting_approval | applied | discarded"}
    )
    late = ma.fields.Boolean(metadata={"description": "截止日期后提交，须财政审批"})
    uploaded_by = ma.fields.String()
    uploaded_at = ma.fields.DateTime()
    applied_at = ma.fields.DateTime(allow_none=True)
    approved_by = ma.fields.String(allow_none=True)
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    blocking = ma.fields.Integer(metadata={"description": "阻止确认的错误行数"})
    not_listed = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        metadata={"description": "每类超过 500 行未列出的行数"},
    )
    lines = ma.fields.List(ma.fields.Nested(PreviewLineSchema))


class UploadSummarySchema(Schema):
    id = ma.fields.Integer()
    department = ma.fields.String()
    year = ma.fields.Integer()
    categories = ma.fields.List(ma.fields.String(), attribute="keys")
    file_name = ma.fields.String()
    status = ma.fields.String()
    late = ma.fields.Boolean()
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    uploaded_at = ma.fields.DateTime()


class UploadListSchema(Schema):
    uploads = ma.fields.List(ma.fields.Nested(UploadSummarySchema))


class ApplyResultSchema(Schema):
    upload_id = ma.fields.Integer()
    status = ma.fields.String()
    changed = ma.fields.Boolean(metadata={"description": "false：已确认过，本次未作任何改变"})
    added = ma.fields.Integer()
    removed = ma.fields.Integer()
    events = ma.fields.Integer()
    orders_closed = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    refunds = ma.fields.Integer(metadata={"description": "因死亡进入退费队列的笔数"})
    message = ma.fields.String()


class BatchQuerySchema(Schema):
    year = ma.fields.Integer(required=True, validate=validate.Range(2000, 2100))


class BatchListQuerySchema(Schema):
    status = ma.fields.String(
        load_default=None, validate=validate.OneOf([s.value for s in BatchStatus])
    )


class BatchLineSchema(Schema):
    person_id = ma.fields.Integer()
    id_number = ma.fields.String(metadata={"description": "脱敏身份证号"})
    name = ma.fields.String(metadata={"description": "脱敏姓名"})
    birth_year = ma.fields.Integer(metadata={"description": "出生年份（区分脱敏后同名的人）"})
    insurance = ma.fields.String()
    kind = ma.fields.String(metadata={"description": "book | reimburse | reverse"})
    label = ma.fields.String(
        metadata={"description": "代缴 / 个人已缴，代缴资金退付个人 / 代缴冲销"}
    )
    amount_fen = ma.fields.Integer()
    contribution_id = ma.fields.Integer(allow_none=True)
    outcome = ma.fields.String(
        metadata={
            "description": "draft | pending | booked | already_paid | no_longer_due | "
            "approved | reversed | already_reversed"
        }
    )


class TotalSchema(Schema):
    lines = ma.fields.Integer()
    amount_fen = ma.fields.Integer()


class BatchSummarySchema(Schema):
    id = ma.fields.Integer()
    department = ma.fields.String()
    year = ma.fields.Integer()
    status = ma.fields.String(metadata={"description": "submitted | approved"})
    submitted_by = ma.fields.String()
    submitted_at = ma.fields.DateTime()
    approved_by = ma.fields.String(allow_none=True)
    approved_at = ma.fields.DateTime(allow_none=True)
    totals = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(TotalSchema))


class BatchSchema(BatchSummarySchema):
    lines = ma.fields.List(ma.fields.Nested(BatchLineSchema))


class BatchListSchema(Schema):
    batches = ma.fields.List(ma.fields.Nested(BatchSummarySchema))


class DraftSchema(Schema):
    department = ma.fields.String()
    department_name = ma.fields.String()
    year = ma.fields.Integer()
    totals = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(TotalSchema))
    lines = ma.fields.List(ma.fields.Nested(BatchLineSchema))
    batches = ma.fields.List(ma.fields.Nested(BatchSummarySchema))


class SubmitSchema(Schema):
    year = ma.fields.Integer(required=True, validate=validate.Range(2000, 2100))
