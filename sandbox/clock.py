"""The sandbox's clock: business time (optionally pinned to APP_TODAY) and scaled waiting.

Two notions of time on purpose:
- business instants (payment time, refund time, bill dates) come from `Clock.now()`, in
  Asia/Shanghai because both vendors show Beijing time (PROTOCOLS.md §1.3, §5.2); with
  APP_TODAY the date is pinned and the time of day is real, exactly like the API's clock;
- signature timestamps (v3 `Wechatpay-Timestamp`, the 5-minute Authorization window, §2.2) use
  the real epoch, because the merchant's SDK stamps its requests with the real epoch too.
Vendor delays (retry schedules, refund settlement) are multiplied by SANDBOX_TIME_SCALE.
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")

COMPACT = "%Y%m%d%H%M%S"  # WeChat v2 time_end / time_start (§1.3)
DASHED = "%Y-%m-%d %H:%M:%S"  # Alipay, WeChat bills and v2 refund success_time (§1.8, §5.5)


class Clock:
    """Business time and scaled sleeping, shared by every module of one sandbox server."""

    def __init__(self, *, time_scale: float = 1.0, app_today: str = "") -> None:
        if time_scale < 0:
            raise ValueError("time scale must be >= 0")
        self.time_scale = time_scale
        self.pinned: date | None = date.fromisoformat(app_today) if app_today else None

    def now(self) -> datetime:
        """The current business instant, timezone-aware, in Beijing time."""
        real = datetime.now(BEIJING)
        if self.pinned is None:
            return real
        return real.replace(year=self.pinned.year, month=self.pinned.month, day=self.pinned.day)

    def today(self) -> date:
        """The current Beijing business date (bills are cut by it, §6.1)."""
        return self.now().date()

    def scaled(self, vendor_seconds: float) -> float:
        """Real seconds for a vendor delay."""
        return max(0.0, vendor_seconds * self.time_scale)

    def wait(self, real_seconds: float, stop: threading.Event) -> bool:
        """Sleep `real_seconds` unless `stop` is set first; True when stopped."""
        if real_seconds <= 0:
            return stop.is_set()
        return stop.wait(real_seconds)

    @staticmethod
    def epoch() -> int:
        """Real Unix seconds (for signature timestamps)."""
        return int(time.time())


def rfc3339(moment: datetime) -> str:
    """`2015-05-20T13:29:35+08:00`, the v3 time format (§2.1, §2.4)."""
    return moment.astimezone(BEIJING).isoformat(timespec="seconds")


def compact(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(COMPACT)


def dashed(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(DASHED)


def beijing_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Beijing calendar day."""
    start = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
    return start, start + timedelta(days=1)
