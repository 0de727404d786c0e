"""Today's date and the current instant, in one place.

`APP_TODAY` (sandbox and demo only) pins the date so the 2020 collection window can be walked
through; the instant keeps the real time of day. Dates that residents and gateways see are
Beijing dates (Asia/Shanghai); instants are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")


def _pinned() -> date | None:
    try:
        from flask import current_app, has_app_context
    except ImportError:  # pragma: no cover
        return None
    if has_app_context():
        raw = current_app.config.get("APP_TODAY") or ""
        return date.fromisoformat(raw) if raw else None
    return None


def today(pinned: str | None = None) -> date:
    """The Beijing date the rules are applied on."""
    if pinned:
        return date.fromisoformat(pinned)
    fixed = _pinned()
    if fixed is not None:
        return fixed
    return datetime.now(BEIJING).date()


def now(pinned: str | None = None) -> datetime:
    """The current UTC instant; with a pinned date, that date at the current Beijing time."""
    real = datetime.now(BEIJING)
    fixed = date.fromisoformat(pinned) if pinned else _pinned()
    if fixed is None:
        return real.astimezone(UTC)
    return datetime.combine(fixed, time(real.hour, real.minute, real.second), BEIJING).astimezone(
        UTC
    )


def unpinned(instant: datetime) -> datetime:
    """The real instant behind one stamped by `now()` (the same with no date pinned): what a
    gateway's clock said then, for checks against its timestamps (WeChat Pay v3 freshness)."""
    fixed = _pinned()
    if fixed is None:
        return instant
    return instant - timedelta(days=(fixed - datetime.now(BEIJING).date()).days)
