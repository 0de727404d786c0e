"""Sliding-window throttling of failed attempts (household binds, staff logins)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
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
