"""Gateway time formats: every channel speaks Beijing wall-clock time; we store UTC instants.

WeChat v2 uses `yyyyMMddHHmmss` (PROTOCOLS.md §1.3) and `yyyy-MM-dd HH:mm:ss` in refund
notifications and bills (§1.8, §1.9); WeChat v3 uses RFC 3339 with an offset (§2.1); Alipay
uses `yyyy-MM-dd HH:mm:ss` (§5.5). All naive gateway times are Asia/Shanghai.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from api.clock import BEIJING

COMPACT = "%Y%m%d%H%M%S"
DASHED = "%Y-%m-%d %H:%M:%S"
_DASHED_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def to_beijing(instant: datetime, fmt: str) -> str:
    """Format an aware instant as Beijing wall-clock time."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(BEIJING).strftime(fmt)


def to_rfc3339_beijing(instant: datetime) -> str:
    """`2020-10-01T08:30:00+08:00`: the v3 `time_expire` form."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(BEIJING).replace(microsecond=0).isoformat()


def parse_beijing(value: str | None, fmt: str) -> datetime | None:
    """A naive Beijing gateway time → UTC instant; None for empty; ValueError for garbage."""
    if not value:
        return None
    text = value.strip()
    if fmt == DASHED and _DASHED_SHAPE.fullmatch(text):
        # The bills' format, tens of thousands a day: the C parser, on the exact shape only.
        parsed = datetime.fromisoformat(text).replace(tzinfo=BEIJING)
    else:
        parsed = datetime.strptime(text, fmt).replace(tzinfo=BEIJING)
    return parsed.astimezone(UTC)


def parse_rfc3339(value: str | None) -> datetime | None:
    """An RFC 3339 time with offset → UTC instant; a value without offset is refused."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 3339 time without offset: {value!r}")
    return parsed.astimezone(UTC)
