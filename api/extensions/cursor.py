"""Keyset pagination 游标分页: every growing list pages by a cursor on its id, never by offset.

Why: an offset page of a live log slides when rows are added while a reader pages (the sandbox
scenario read one applied notification twice across a page boundary), and `OFFSET n` reads and
throws away n rows. A cursor is the id of the last row of the previous page; the next page is
the rows past it (`id < cursor` newest first, `id > cursor` oldest first) in id order, so a row
added while paging can neither repeat a row nor push one out of sight, and each page is one
walk of the primary key. `next_cursor` is null on the last page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import marshmallow as ma
from marshmallow import validate
from sqlalchemy import Select

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
T = TypeVar("T")


class CursorFields(ma.Schema):
    """Mix into a query schema: `cursor`, `limit`, `order`."""

    cursor = ma.fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[1-9][0-9]{0,17}$", error="游标无效"),
        metadata={"description": "上一页返回的 next_cursor；不填为第一页"},
    )
    limit = ma.fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(1, MAX_LIMIT),
        metadata={"description": f"每页条数，1–{MAX_LIMIT}"},
    )
    order = ma.fields.String(
        load_default="desc",
        validate=validate.OneOf(("desc", "asc")),
        metadata={"description": "desc：最新的在前（默认）；asc：最早的在前（适合持续对账）"},
    )

    @ma.validates_schema(pass_original=True)
    def _no_offset(self, _data: dict[str, Any], original: Any, **_kwargs: Any) -> None:
        if isinstance(original, Mapping) and ({"page", "page_size"} & set(original)):
            raise ma.ValidationError(
                "已改为游标分页：请用 limit 与上一页返回的 next_cursor（cursor 参数）", "page"
            )


def keyset(query: Select[Any], id_column: Any, args: dict[str, Any]) -> Select[Any]:
    """`query` restricted to the rows past the cursor, in id order, one row more than a page
    (that extra row only tells whether there is a next page)."""
    descending = args.get("order", "desc") == "desc"
    cursor = args.get("cursor")
    if cursor is not None:
        query = query.where(id_column < int(cursor) if descending else id_column > int(cursor))
    order = id_column.desc() if descending else id_column.asc()
    return query.order_by(order).limit(int(args.get("limit", DEFAULT_LIMIT)) + 1)


def page(rows: Sequence[T], args: dict[str, Any], *, id_of: Any) -> tuple[list[T], str | None]:
    """(the page, next_cursor or None) from what `keyset` returned."""
    limit = int(args.get("limit", DEFAULT_LIMIT))
    shown = list(rows[:limit])
    return shown, (str(id_of(shown[-1])) if len(rows) > limit and shown else None)


def headers(next_cursor: str | None, args: dict[str, Any]) -> dict[str, str]:
    """Response headers of a cursor page: `X-Pagination` (JSON, as flask-smorest's offset pages
    had it) and `X-Next-Cursor`, absent on the last page."""
    out = {
        "X-Pagination": json.dumps(
            {"next_cursor": next_cursor, "limit": int(args.get("limit", DEFAULT_LIMIT))}
        )
    }
    if next_cursor is not None:
        out["X-Next-Cursor"] = next_cursor
    return out


NEXT_CURSOR_HEADER = {
    "X-Next-Cursor": {
        "description": "the next page's `cursor`; absent on the last page",
        "schema": {"type": "string"},
    }
}
