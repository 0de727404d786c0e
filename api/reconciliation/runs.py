"""One reconciliation run: fetch (or take) the bill, match it, heal, store run and items.

Order of work, chosen so a failure leaves nothing half-written:
1. the bill is obtained and parsed completely before anything is written (a malformed bill
   raises `BadBill`; a missing one before it is due raises `BillNotReady`);
2. our side is read and every row matched (`matching.match`);
3. each new `missing_ours` is healed through the notification's own path
   (`books.heal_payment`: order query, then `settlement.apply_payment`), which commits the
   payment itself — a payment is real whether or not the run finishes;
4. the run, its new items and the re-check of the previous day's `missing_channel` items are
   written in one transaction. Items are unique per (channel, date, side, key): an item
   already there (above all one a person resolved) is kept as it is and counted under its
   own type, so a re-run creates nothing and a healed `missing_ours` stays counted once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.clock import BEIJING
from api.clock import now as clock_now
from api.config import Config
from api.db import Database, utcnow
from api.payments import books
from api.payments.channels import ChannelError
from api.reconciliation.matching import Finding, match
from api.reconciliation.models import (
    OUTCOMES,
    ItemStatus,
    Outcome,
    ReconciliationItem,
    ReconciliationItemEvent,
    ReconciliationRun,
    Resolution,
    RunStatus,
)

log = logging.getLogger(__name__)
CHANNELS = ("wechat", "alipay")
SYSTEM = "reconciliation"
#: WeChat generates D's bill from 09:00 on D+1 (PROTOCOLS.md §6.1); Alipay is T+1 as well.
BILL_READY_AT = time(9, 0)
#: Outcomes that wait for the next day's bill before they go to the suspense pool.
RECHECKED = (Outcome.MISSING_CHANNEL, Outcome.REFUND_MISSING_CHANNEL)


class ReconcileError(Exception):
    """The run could not be done now; `code` is stable, the message says what to do."""

    code = "reconcile_failed"


class BillNotReady(ReconcileError):
    code = "bill_not_ready"


class BillUnavailable(ReconcileError):
    code = "channel_unavailable"


class BadBill(ReconcileError):
    code = "malformed_bill"


def bill_due(day: date, now: datetime) -> bool:
    """Whether the channel should have D's bill by `now` (09:00 Beijing on D+1)."""
    ready = datetime.combine(day + timedelta(days=1), BILL_READY_AT, BEIJING)
    return now >= ready


def obtain_bill(settings: Config, channel: str, day: date, *, now: datetime | None = None) -> bytes:
    """The channel's bill file for `day`; b"" for a day it has no bill for, once due.

    "No bill" is ambiguous (nothing happened, or not generated yet); the clock decides."""
    try:
        data = books.fetch_bill(settings, channel, day)
    except ChannelError as exc:
        raise BillUnavailable(
            f"{channel} bill of {day}: channel unavailable ({exc}); retry later"
        ) from exc
    if data is None:
        if not bill_due(day, now or clock_now()):
            raise BillNotReady(
                f"{channel} bill of {day} is not ready yet; retry after 10:00 of the next day"
            )
        return b""
    return data


def parse(channel: str, data: bytes) -> list[books.BillRow]:
    if not data:
        return []
    try:
        return books.parse_bill(channel, data)
    except books.MalformedBill as exc:
        raise BadBill(f"malformed {channel} bill: {exc}; nothing was recorded") from exc


@dataclass(frozen=True)
class RunReport:
    run_id: int
    channel: str
    bill_date: date
    status: str
    counts: dict[str, int]
    bill_rows: int
    bill_total_fen: int
    bill_refund_fen: int
    bill_fee_fen: int
    our_total_fen: int
    our_refund_fen: int
    bill_sha256: str
    bill_size: int
    new_items: int
    healed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "channel": self.channel,
            "bill_date": self.bill_date.isoformat(),
            "status": self.status,
            "counts": dict(self.counts),
            "bill_rows": self.bill_rows,
            "bill_total_fen": self.bill_total_fen,
            "bill_refund_fen": self.bill_refund_fen,
            "bill_fee_fen": self.bill_fee_fen,
            "our_total_fen": self.our_total_fen,
            "our_refund_fen": self.our_refund_fen,
            "bill_sha256": self.bill_sha256,
            "bill_size": self.bill_size,
            "new_items": self.new_items,
            "healed": self.healed,
        }


def _read_ours(
    db: Database, channel: str, day: date, rows: list[books.BillRow]
) -> tuple[
    dict[str, books.OrderFacts],
    dict[str, books.RefundFacts],
    list[books.OrderFacts],
    list[books.RefundFacts],
]:
    """Our records for the bill's keys, and ours of the day the bill does not show as paid.

    The day's paid orders are read as keys; facts are asked only for those without a payment
    row on the bill (the others were read with the bill's keys): a busy day's 50,000 orders
    are not read twice."""
    start, end = books.beijing_day(day)
    billed = {r.out_trade_no for r in rows if r.kind == "payment"}
    with db.job() as session:
        orders = books.orders_by_out_trade_no(session, (r.out_trade_no for r in rows))
        refunds = books.refunds_by_out_refund_no(
            session, (r.out_refund_no for r in rows if r.out_refund_no)
        )
        unbilled = [
            key
            for key in books.paid_keys_between(session, channel, start, end)
            if key not in billed
        ]
        paid = list(books.orders_by_out_trade_no(session, unbilled).values())
        refunded = books.refunds_between(session, channel, start, end)
    return orders, refunds, paid, refunded


def _existing(
    session: Session, channel: str, day: date
) -> dict[tuple[str, str], ReconciliationItem]:
    items = session.scalars(
        select(ReconciliationItem).where(
            ReconciliationItem.channel == channel, ReconciliationItem.bill_date == day
        )
    )
    return {(i.side, i.key): i for i in items}


def run(
    db: Database,
    settings: Config,
    channel: str,
    day: date,
    *,
    data: bytes | None = None,
    actor: str = SYSTEM,
    now: datetime | None = None,
) -> RunReport:
    """Reconcile `channel`'s bill of Beijing date `day` (fetched, or `data` from a file)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    source = "file" if data is not None else "channel"
    raw = data if data is not None else obtain_bill(settings, channel, day, now=now)
    fetched_at = utcnow()
    rows = parse(channel, raw)
    orders, refunds, our_paid, our_refunds = _read_ours(db, channel, day, rows)
    matched = match(channel, rows, orders, refunds, our_paid, our_refunds)

    with db.job() as session:
        existing = _existing(session, channel, day)
    heals: dict[str, str] = {}
    for finding in matched.findings:
        if finding.outcome == Outcome.MISSING_OURS and ("payment", finding.key) not in existing:
            heals[finding.key] = books.heal_payment(db, settings, finding.key, channel)

    report = _store_retrying(db, channel, day, raw, source, fetched_at, rows, matched, heals, actor)
    if source == "channel":
        recheck_with_next_day(db, settings, channel, day, now=now)
    return report


def _store_retrying(
    db: Database,
    channel: str,
    day: date,
    raw: bytes,
    source: str,
    fetched_at: datetime,
    rows: list[books.BillRow],
    matched: Any,
    heals: dict[str, str],
    actor: str,
) -> RunReport:
    for attempt in (1, 2):
        try:
            with db.job() as session:
                return _store(
                    session,
                    channel=channel,
                    day=day,
                    raw=raw,
                    source=source,
                    fetched_at=fetched_at,
                    rows=rows,
                    findings=matched.findings,
                    totals=(matched.bill_total_fen, matched.bill_refund_fen, matched.bill_fee_fen),
                    heals=heals,
                    actor=actor,
                )
        except IntegrityError:
            # A concurrent run of the same date stored first; the second pass sees its rows.
            if attempt == 2:
                raise
            log.info("concurrent reconciliation run, storing again", extra={"channel": channel})
    raise AssertionError("unreachable")


def _store(
    session: Session,
    *,
    channel: str,
    day: date,
    raw: bytes,
    source: str,
    fetched_at: datetime,
    rows: list[books.BillRow],
    findings: list[Finding],
    totals: tuple[int, int, int],
    heals: dict[str, str],
    actor: str,
) -> RunReport:
    start, end = books.beijing_day(day)
    our_total = books.paid_total_between(session, channel, start, end)
    our_refunds = books.refunds_between(session, channel, start, end)
    run_row = session.scalars(
        select(ReconciliationRun)
        .where(ReconciliationRun.channel == channel, ReconciliationRun.bill_date == day)
        .with_for_update()
    ).one_or_none()
    if run_row is None:
        run_row = ReconciliationRun(
            channel=channel,
            bill_date=day,
            status=RunStatus.COMPLETED,
            source=source,
            fetched_at=fetched_at,
            runs=0,
            counts={},
        )
        session.add(run_row)
    run_row.status = RunStatus.COMPLETED
    run_row.source = source
    run_row.bill_raw = raw
    run_row.bill_sha256 = hashlib.sha256(raw).hexdigest()
    run_row.bill_size = len(raw)
    run_row.fetched_at = fetched_at
    run_row.bill_rows = len(rows)
    run_row.bill_total_fen, run_row.bill_refund_fen, run_row.bill_fee_fen = totals
    run_row.our_total_fen = our_total
    run_row.our_refund_fen = sum(r.amount_fen for r in our_refunds)
    run_row.runs += 1
    run_row.started_at = fetched_at
    run_row.finished_at = utcnow()
    session.flush()

    existing = _existing(session, channel, day)
    counts = dict.fromkeys(OUTCOMES, 0)
    created: list[tuple[ReconciliationItem, str | None]] = []
    for finding in findings:
        item = existing.get((finding.side, finding.key))
        if item is not None:
            counts[item.type] += 1
            continue
        counts[finding.outcome] += 1
        if finding.outcome == Outcome.MATCHED:
            continue
        heal = heals.get(finding.key)
        item = _new_item(run_row, finding, heal)
        existing[(finding.side, finding.key)] = item
        created.append((item, heal))
    # One flush for all new items (a busy day's faults are hundreds: one INSERT … RETURNING,
    # not a round trip each), then their first history entries.
    session.add_all([item for item, _ in created])
    session.flush()
    for item, heal in created:
        history(session, item, actor=SYSTEM, action="created", before=None)
        if heal is not None:
            history(
                session, item, actor=SYSTEM, action="heal", before=None, comment=item.heal_result
            )
    new_items = len(created)
    healed = sum(item.resolution == Resolution.HEALED for item, _ in created)
    run_row.counts = counts
    rechecked = _recheck(session, channel, day - timedelta(days=1), rows, bill_of=day)
    audit(
        session,
        actor=actor,
        action="reconciliation.run",
        subject=f"{channel}:{day.isoformat()}",
        detail={"counts": counts, "new_items": new_items, "rechecked": rechecked},
    )
    return RunReport(
        run_id=run_row.id,
        channel=channel,
        bill_date=day,
        status=run_row.status,
        counts=counts,
        bill_rows=len(rows),
        bill_total_fen=run_row.bill_total_fen,
        bill_refund_fen=run_row.bill_refund_fen,
        bill_fee_fen=run_row.bill_fee_fen,
        our_total_fen=run_row.our_total_fen,
        our_refund_fen=run_row.our_refund_fen,
        bill_sha256=run_row.bill_sha256 or "",
        bill_size=run_row.bill_size,
        new_items=new_items,
        healed=healed,
    )


def _new_item(run_row: ReconciliationRun, finding: Finding, heal: str | None) -> ReconciliationItem:
    """The item of a new difference (not added: the caller adds and flushes them together)."""
    now = utcnow()
    status = ItemStatus.OPEN
    resolution = None
    if finding.outcome in RECHECKED:
        status = ItemStatus.RECHECK
    if finding.outcome == Outcome.MISSING_OURS and heal == "paid":
        status, resolution = ItemStatus.RESOLVED, Resolution.HEALED
    item = ReconciliationItem(
        run_id=run_row.id,
        channel=run_row.channel,
        bill_date=run_row.bill_date,
        side=finding.side,
        key=finding.key,
        type=finding.outcome,
        out_trade_no=finding.out_trade_no,
        out_refund_no=finding.out_refund_no,
        bill_amount_fen=finding.bill_amount_fen,
        our_amount_fen=finding.our_amount_fen,
        bill_status=finding.bill_status,
        our_status=finding.our_status,
        heal_result="healed" if heal == "paid" else heal,
        status=status,
        resolution=resolution,
        reason="补单: paid through the notification path" if resolution else None,
        detail={"transaction_id": finding.transaction_id} if finding.transaction_id else None,
        created_at=now,
        updated_at=now,
        resolved_at=now if resolution else None,
    )
    return item


def history(
    session: Session,
    item: ReconciliationItem,
    *,
    actor: str,
    action: str,
    before: str | None,
    comment: str | None = None,
) -> None:
    """Append one entry to an item's history (who, what, from which status to which)."""
    session.add(
        ReconciliationItemEvent(
            item_id=item.id,
            actor=actor,
            action=action,
            from_status=before,
            to_status=item.status,
            comment=comment,
            at=utcnow(),
        )
    )


def _recheck(
    session: Session, channel: str, day: date, rows: Iterable[books.BillRow], *, bill_of: date
) -> int:
    """Settle `day`'s items waiting for the next bill: found there → carried over (日切),
    absent → into the suspense pool."""
    waiting = list(
        session.scalars(
            select(ReconciliationItem).where(
                ReconciliationItem.channel == channel,
                ReconciliationItem.bill_date == day,
                ReconciliationItem.status == ItemStatus.RECHECK,
            )
        )
    )
    if not waiting:
        return 0
    trades = {r.out_trade_no for r in rows if r.kind == "payment"}
    refunds = {r.out_refund_no for r in rows if r.kind == "refund"}
    now = utcnow()
    for item in waiting:
        found = item.key in (trades if item.side == "payment" else refunds)
        before = item.status
        if found:
            item.status, item.resolution = ItemStatus.RESOLVED, Resolution.CARRIED_OVER
            item.reason = f"on the bill of {bill_of.isoformat()} (day cut-over)"
            item.resolved_at = now
        else:
            item.status = ItemStatus.OPEN
        item.updated_at = now
        history(session, item, actor=SYSTEM, action="recheck", before=before, comment=item.reason)
    return len(waiting)


def recheck_with_next_day(
    db: Database, settings: Config, channel: str, day: date, *, now: datetime | None = None
) -> int:
    """Re-check `day`'s waiting items against D+1's bill when that bill is due (best effort:
    when it cannot be had now, the D+1 run does the re-check)."""
    following = day + timedelta(days=1)
    if not bill_due(following, now or clock_now()):
        return 0
    try:
        rows = parse(channel, obtain_bill(settings, channel, following, now=now))
    except ReconcileError as exc:
        log.info("next day's bill not available for the re-check", extra={"reason": str(exc)})
        return 0
    with db.job() as session:
        return _recheck(session, channel, day, rows, bill_of=following)
