"""The district's calendar is Beijing's, whatever the machine's zone and hour (issue 17).

`scripts/test-clock HH:MM ZONE` runs the suite with the clock moved to that Beijing time and
TZ=ZONE; the first test here proves the move took effect, so a shifted run can never silently
be an ordinary one.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from api import clock

STARTED_AT = datetime.now(UTC)  # at collection, before any test ran


def test_shifted_run_starts_at_the_requested_beijing_time() -> None:
    expected = os.environ.get("SSI_EXPECT_BEIJING_TIME")
    if not expected:
        return  # an ordinary run: nothing was moved
    hour, minute = (int(p) for p in expected.split(":"))
    started = STARTED_AT.astimezone(clock.BEIJING)
    target = started.replace(hour=hour, minute=minute, second=0, microsecond=0)
    assert timedelta(0) <= started - target < timedelta(minutes=5), started
    machine_offset = datetime.now().astimezone().utcoffset()  # the zone the run asked for
    assert machine_offset == datetime.now(ZoneInfo(os.environ["TZ"])).utcoffset()


def test_today_is_the_beijing_date_not_the_machines() -> None:
    before = datetime.now(clock.BEIJING).date()
    today = clock.today()
    after = datetime.now(clock.BEIJING).date()
    assert today in (before, after)
    assert isinstance(today, date)


def test_now_is_utc_and_pinned_day_keeps_beijing_time_of_day() -> None:
    instant = clock.now()
    assert instant.tzinfo is not None and instant.utcoffset() == timedelta(0)
    pinned = clock.now("2019-11-05").astimezone(clock.BEIJING)
    assert pinned.date() == date(2019, 11, 5)
