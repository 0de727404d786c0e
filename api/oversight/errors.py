"""Errors of the oversight views, each with its stable `code` and a Chinese message."""

from __future__ import annotations

from api.errors import DomainError, Forbidden


class OutOfScope(Forbidden):
    """A town office asked for the district or another town (least privilege)."""

    code = "out_of_scope"
    message = "只能查看本镇(街)及所辖村居的数据"


class NotApplicable(DomainError):
    """A filter that does not apply to the chosen kind of record."""

    status = 422
    code = "filter_not_applicable"
    message = "该筛选条件不适用于所选类别"
