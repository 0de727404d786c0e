"""Query schemas of the oversight views: validated levels, dates and kinds (422, never 500)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.extensions.cursor import CursorFields
from api.extensions.smorest import Schema
from api.oversight.audit import KINDS
from api.oversight.progress import LEVELS

_TOWN = ma.fields.String(
    validate=validate.Regexp(r"^[0-9]{9,12}$", error="镇(街)代码应为9–12位数字"),
    metadata={"description": "镇(街)代码，如 370406101"},
)
_YEAR = ma.fields.Integer(
    validate=validate.Range(2000, 2100), metadata={"description": "参保年度，默认最新年度"}
)


class ProgressQuerySchema(Schema):
    level = ma.fields.String(
        load_default="district",
        validate=validate.OneOf(LEVELS, error="level 只能是 district、town 或 village"),
        metadata={"description": "district | town | village"},
    )
    date = ma.fields.Date(metadata={"description": "截至日期（北京时间，含当日），默认今天"})
    year = _YEAR
    town = _TOWN
    format = ma.fields.String(load_default="json", validate=validate.OneOf(("json", "xlsx")))


class ChartQuerySchema(Schema):
    kind = ma.fields.String(
        load_default="cumulative",
        validate=validate.OneOf(("cumulative", "mix"), error="kind 只能是 cumulative 或 mix"),
    )
    date = ma.fields.Date(metadata={"description": "截至日期（北京时间，含当日），默认今天"})
    year = _YEAR
    town = _TOWN


class AuditQuerySchema(CursorFields, Schema):
    kind = ma.fields.String(
        load_default="refusal",
        validate=validate.OneOf(KINDS, error="kind 只能是 " + "、".join(KINDS)),
        metadata={"description": " | ".join(KINDS)},
    )
    actor = ma.fields.String(
        validate=validate.Length(max=64), metadata={"description": "如 staff:3、system"}
    )
    action = ma.fields.String(validate=validate.Length(max=64))
    town = _TOWN
    date_from = ma.fields.Date(metadata={"description": "北京时间日期，含"})
    date_to = ma.fields.Date(metadata={"description": "北京时间日期，含"})
    format = ma.fields.String(load_default="json", validate=validate.OneOf(("json", "csv", "xlsx")))

    @ma.validates_schema
    def _range(self, data: dict[str, object], **_kwargs: object) -> None:
        start, end = data.get("date_from"), data.get("date_to")
        if start is not None and end is not None and start > end:  # type: ignore[operator]
            raise ma.ValidationError("开始日期不能晚于结束日期", "date_to")
