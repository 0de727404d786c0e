"""Bounds every input must keep before it reaches a query, applied once for every endpoint.

PostgreSQL refuses a NUL character in text and a lone UTF-16 surrogate cannot be encoded at
all; an `integer` column takes only 32-bit values; `date - timedelta` overflows near year 1
and year 9999. Each of these was a 500 (issue 10). Rather than repeat the bounds in every
schema, the project's `Blueprint` passes every argument schema (body, query, headers,
pagination) through `guard_schema` when a route is declared, and `install_converters` gives
path parameters the same bounds. The added validators are ordinary marshmallow validators, so
the OpenAPI document shows the integer bounds too.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import marshmallow as ma
from flask import Flask
from werkzeug.routing import IntegerConverter, UnicodeConverter

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
# No resident was born before 1900 and no collection year runs past 2100; anything outside
# is a typo or a probe, and keeps `date ± timedelta` far from `date.min` / `date.max`.
DATE_MIN = dt.date(1900, 1, 1)
DATE_MAX = dt.date(2100, 12, 31)

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_GUARDED = "_input_guarded"


def reject_unstorable(value: object) -> None:
    """A string with NUL or a lone surrogate cannot be stored or compared in PostgreSQL."""
    if isinstance(value, str) and _UNSTORABLE.search(value):
        raise ma.ValidationError("不能包含控制字符 NUL 或无效的 Unicode 字符")


def within_date_bounds(value: object) -> None:
    day = value.date() if isinstance(value, dt.datetime) else value
    if isinstance(day, dt.date) and not DATE_MIN <= day <= DATE_MAX:
        raise ma.ValidationError(f"日期应在 {DATE_MIN.isoformat()} 至 {DATE_MAX.isoformat()} 之间")


INT32_RANGE = ma.validate.Range(
    min=INT32_MIN, max=INT32_MAX, error=f"应为 {INT32_MIN} 至 {INT32_MAX} 之间的整数"
)


def guard_field(field: ma.fields.Field) -> None:
    """Add the storable-value validators to `field` and to the fields inside it."""
    if getattr(field, _GUARDED, False):
        return
    setattr(field, _GUARDED, True)
    if isinstance(field, ma.fields.String):
        field.validators.append(reject_unstorable)
    elif isinstance(field, ma.fields.Integer):
        field.validators.append(INT32_RANGE)
    elif isinstance(field, ma.fields.Date | ma.fields.DateTime):
        field.validators.append(within_date_bounds)
    elif isinstance(field, ma.fields.Nested):
        schema = field.schema
        for inner in (schema.fields if isinstance(schema, ma.Schema) else {}).values():
            guard_field(inner)
    elif isinstance(field, ma.fields.List):
        guard_field(field.inner)
    elif isinstance(field, ma.fields.Tuple):
        for inner in field.tuple_fields:
            guard_field(inner)
    elif isinstance(field, ma.fields.Dict):
        for part in (field.key_field, field.value_field):
            if part is not None:
                guard_field(part)


def guard_schema(schema: ma.Schema | type[ma.Schema]) -> None:
    """Guard every field of an argument schema (an instance, or a class's declared fields)."""
    fields = schema.fields if isinstance(schema, ma.Schema) else schema._declared_fields
    for field in fields.values():
        guard_field(field)


class SafeStringConverter(UnicodeConverter):
    """`<string:…>` and `<…>` path segments without NUL (PostgreSQL cannot compare them)."""

    def __init__(self, map: Any, minlength: int = 1, maxlength: int | None = None, **kw: Any):
        super().__init__(map, minlength=minlength, maxlength=maxlength or 128, **kw)
        self.regex = self.regex.replace("[^/]", "[^/\\x00]")


class Int32Converter(IntegerConverter):
    """`<int:…>` path segments that fit the `integer` columns they are looked up in."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", INT32_MAX)
        super().__init__(map, *args, **kwargs)


def install_converters(app: Flask) -> None:
    """Before any route is added: path parameters get the same bounds as the schemas."""
    app.url_map.converters.update(
        default=SafeStringConverter,
        string=SafeStringConverter,
        int=Int32Converter,
    )
