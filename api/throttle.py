"""Throttling of failed attempts (household binds, staff logins): guessing stays slow, and a
legitimate user is never locked out by someone else's failures.

Two measures over the same failure rows:
- `seconds_until_allowed`, a hard sliding window, only for failures that are the requester's
  own (its resident account; its username from its own address) or an address's failures
  far past anything a shared address (village Wi-Fi, carrier NAT, a town office) produces;
- `growing_delay`, for failures others may have caused (a whole address, a username from
  anywhere): past a free allowance each further failure doubles the pause that must follow
  the latest one, up to a cap — slow for a guesser, never a lock-out for the owner, whose
  next try waits at most the cap.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session


def seconds_until_allowed(
    session: Session,
    at: Any,
    condition: Any,
    *,
    allowed: int,
    window_seconds: int,
    now: datetime,
) -> int:
    """Seconds until fewer than `allowed` failures matching `condition` are in the window.

    `at` is the failure table's timestamp column. Only the newest `allowed` failures are read:
    when there are that many, the oldest of them leaving the window is what frees the next
    attempt. 0 means "go ahead".
    """
    since = now - timedelta(seconds=window_seconds)
    recent = list(
        session.scalars(select(at).where(condition, at > since).order_by(at.desc()).limit(allowed))
    )
    if len(recent) < allowed:
        return 0
    wait = recent[-1] + timedelta(seconds=window_seconds) - now
    return max(1, math.ceil(wait.total_seconds()))


def growing_delay(
    session: Session,
    at: Any,
    condition: Any,
    *,
    free: int,
    window_seconds: int,
    now: datetime,
    cap_seconds: int,
    base_seconds: int = 1,
) -> int:
    """Seconds to wait after the latest failure matching `condition`: 0 while fewer than
    `free` are in the window, then `base_seconds` doubled for each one past `free`, at most
    `cap_seconds`. 0 means "go ahead"."""
    since = now - timedelta(seconds=window_seconds)
    count, latest = session.execute(
        select(func.count(), func.max(at)).where(condition, at > since)
    ).one()
    if count < free or latest is None:
        return 0
    pause = min(cap_seconds, base_seconds * 2 ** min(count - free, 30))
    wait = latest + timedelta(seconds=pause) - now
    return max(0, math.ceil(wait.total_seconds()))
