"""Yesterday's reconciliation, run by the payments worker (`healing.run_once`).

After RECONCILE_DAILY_HOUR (10:00 Beijing, when both channels serve D−1's bill, §6.1) each
channel's run for yesterday is done once: a completed run for the date means done. While the
bill is not ready (or the channel is down, or the file malformed) the job answers
`not_ready` / `unavailable` and is asked again after RECONCILE_BILL_RETRY_MINUTES, not on
every worker round. Runs are idempotent, so two workers racing do no harm.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import select

from api.clock import BEIJING
from api.clock import now as clock_now
from api.config import Config
from api.db import Database
from api.reconciliation.models import ReconciliationRun, RunStatus
from api.reconciliation.runs import CHANNELS, BadBill, BillNotReady, ReconcileError, run

log = logging.getLogger(__name__)
# (channel, date) → when it may be tried again (a process-local politeness towards gateways).
_next_try: dict[tuple[str, date], datetime] = {}


def _done(db: Database, channel: str, day: date) -> bool:
    with db.job() as session:
        status = session.scalar(
            select(ReconciliationRun.status).where(
                ReconciliationRun.channel == channel, ReconciliationRun.bill_date == day
            )
        )
    return status == RunStatus.COMPLETED


def run_due(db: Database, settings: Config, *, now: datetime | None = None) -> dict[str, int]:
    """Reconcile yesterday for every channel not yet done; a count per outcome."""
    moment = (now or clock_now()).astimezone(BEIJING)
    if moment.hour < settings.RECONCILE_DAILY_HOUR:
        return {}
    yesterday = moment.date() - timedelta(days=1)
    counts: dict[str, int] = {}
    for channel in CHANNELS:
        key = (channel, yesterday)
        if _done(db, channel, yesterday):
            outcome = "done"
        elif key in _next_try and moment < _next_try[key]:
            outcome = "waiting"
        else:
            try:
                run(db, settings, channel, yesterday, actor="worker", now=moment)
                outcome = "reconciled"
                _next_try.pop(key, None)
            except ReconcileError as exc:
                outcome = (
                    "not_ready"
                    if isinstance(exc, BillNotReady)
                    else "malformed"
                    if isinstance(exc, BadBill)
                    else "unavailable"
                )
                log.warning(
                    "daily reconciliation not done",
                    extra={"channel": channel, "date": yesterday.isoformat(), "reason": str(exc)},
                )
                _next_try[key] = moment + timedelta(minutes=settings.RECONCILE_BILL_RETRY_MINUTES)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
