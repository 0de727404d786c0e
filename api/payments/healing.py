"""Healing 补单: what keeps a lost notification from costing anything.

Gateways deliver at least once, concurrently, or never (PROTOCOLS.md §4). So:
- `reconcile_open` asks the channel about every order still open past
  `RECONCILE_AFTER_MINUTES` and applies a payment it reports through the very function a
  notification uses (`settlement.apply_payment`): whichever comes first applies, the other is a
  duplicate, and a payment is booked exactly once;
- `expire_orders` closes orders past their `expires_at` at the channel (WeChat closeorder /
  Alipay trade.close, §1.6, §6.4), then here; a close refused because the order was paid
  applies that payment instead;
- `reconcile_refunds` does the same for refunds (退费补单): a refund still `processing` past
  `RECONCILE_REFUNDS_AFTER_MINUTES` — its WeChat refund notification may be lost (§1.8, §2.4)
  — is queried at its channel and a final answer is booked through `refunds.apply_refund_result`,
  the function the refund notification uses. That function locks the refund row and moves it
  with the state machine's conditional update, so whichever of the two comes first reverses the
  contributions and queues their reversal records; the other changes nothing. A refund the
  channel has no record of goes back to the refund processor to be sent again (at most
  `REFUND_MAX_SENDS` sends in all), so money owed to a household is never left waiting on a
  request the channel lost;
- `run_worker` runs all of them and the refund processor in a loop (`flask --app wsgi payments
  worker`), removing the session after every job (STYLE.md 4a) and stopping cleanly on
  SIGTERM / SIGINT between jobs.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.config import Config
from api.db import Database, utcnow
from api.payments.channels import ChannelError, ChannelRefund, TradeState, get_channel
from api.payments.models import (
    OPEN_STATES,
    NotificationOutcome,
    OrderStatus,
    PaymentOrder,
    Refund,
    RefundState,
)
from api.payments.notify import in_transaction, sweep_unfinished
from api.payments.orders import close_at_channel
from api.payments.refunds import RefundApplied, apply_refund_result, process_due_refunds
from api.payments.settlement import apply_payment
from api.payments.states import (
    FINAL_REFUND_STATES,
    LostRace,
    transition_order,
    transition_refund,
)
from api.payments.stray_refunds import process_due_stray_refunds

log = logging.getLogger(__name__)
BATCH = 200


def _candidates(db: Database, *, where: list, limit: int) -> list[PaymentOrder]:  # type: ignore[type-arg]
    with db.job() as session:
        return list(
            session.scalars(
                select(PaymentOrder)
                .where(PaymentOrder.status.in_(OPEN_STATES), *where)
                .order_by(PaymentOrder.created_at, PaymentOrder.id)
                .limit(limit)
            ).all()
        )


# reconcile-open drains every due order each round, in batches, within a time budget.
RECONCILE_BATCH = 50
RECONCILE_BUDGET_SECONDS = 120.0


def reconcile_open(
    db: Database,
    settings: Config,
    *,
    older_than: timedelta | None = None,
    batch: int = RECONCILE_BATCH,
    budget_seconds: float = RECONCILE_BUDGET_SECONDS,
) -> dict[str, int]:
    """Query the channel for every order open longer than `older_than`; apply what it says.

    No cap: batches of `batch` orders (keyset on id, so each order is met once per round) until
    none is left or `budget_seconds` have passed; what the budget leaves is counted in
    `remaining` and met by the next round. Each order is healed in its own transaction that
    first locks it with `FOR UPDATE SKIP LOCKED` (plain on SQLite): several workers can run at
    once, each skipping what another holds (counted in `skipped`), and a notification for that
    order waits for the heal and then finds it paid (a duplicate). The lock is taken only for
    one order's channel query, never for a batch.

    Counts: checked, applied (= paid: booked now), closed (closed or expired here), still_open
    (the channel says open), skipped, remaining (due orders the budget left unreached), batches,
    and the per-answer
    counts as before (paid, open, closed, expired, not_found, error, gone).
    """
    age = (
        older_than
        if older_than is not None
        else timedelta(minutes=settings.RECONCILE_AFTER_MINUTES)
    )
    cutoff = utcnow() - age
    deadline = time.monotonic() + budget_seconds
    counts: dict[str, int] = {
        "checked": 0,
        "applied": 0,
        "closed": 0,
        "still_open": 0,
        "skipped": 0,
        "batches": 0,
    }
    after, drained = 0, False
    while time.monotonic() < deadline:
        ids = _due_ids(db, cutoff=cutoff, after=after, limit=batch)
        if not ids:
            drained = True
            break
        counts["batches"] += 1
        for order_id in ids:
            if time.monotonic() >= deadline:
                break
            after = order_id
            result = _heal_one(db, settings, order_id)
            if result == "skipped":
                counts["skipped"] += 1
                continue
            counts["checked"] += 1
            counts[result] = counts.get(result, 0) + 1
            if result == "paid":
                counts["applied"] += 1
            elif result == "open":
                counts["still_open"] += 1
    counts["closed"] = counts.get(OrderStatus.CLOSED, 0) + counts.get(OrderStatus.EXPIRED, 0)
    # Due orders this round did not reach (the budget ran out): the next round starts with them.
    counts["remaining"] = 0 if drained else _due_count(db, cutoff=cutoff, after=after)
    return counts


def _due_ids(db: Database, *, cutoff: datetime, after: int, limit: int) -> list[int]:
    """The next `limit` ids of orders open since before `cutoff`, above `after` (keyset)."""
    with db.job() as session:
        return list(
            session.scalars(
                select(PaymentOrder.id)
                .where(
                    PaymentOrder.status.in_(OPEN_STATES),
                    PaymentOrder.created_at <= cutoff,
                    PaymentOrder.id > after,
                )
                .order_by(PaymentOrder.id)
                .limit(limit)
            ).all()
        )


def _due_count(db: Database, *, cutoff: datetime, after: int) -> int:
    with db.job() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(PaymentOrder)
                .where(
                    PaymentOrder.status.in_(OPEN_STATES),
                    PaymentOrder.created_at <= cutoff,
                    PaymentOrder.id > after,
                )
            )
            or 0
        )


def _heal_one(db: Database, settings: Config, order_id: int) -> str:
    """Lock one open order (skip it if another worker holds it), ask its channel, apply.

    Returns paid | open | closed | expired | not_found | error | gone | skipped. Commits.
    """
    session = db.session()
    try:
        order = session.scalars(
            select(PaymentOrder)
            .where(PaymentOrder.id == order_id, PaymentOrder.status.in_(OPEN_STATES))
            .with_for_update(skip_locked=True)
        ).one_or_none()
        if order is None:  # healed, paid or closed meanwhile, or another worker holds it
            session.rollback()
            return "skipped"
        result = _ask_and_apply(session, settings, order)
        session.commit()
        return result
    except Exception:
        session.rollback()
        log.exception("reconcile failed", extra={"order_id": order_id})
        return "error"
    finally:
        db.session.remove()


def _ask_and_apply(session: Session, settings: Config, order: PaymentOrder) -> str:
    """Under the order's lock: the channel's answer, applied as a notification would be."""
    try:
        trade = get_channel(settings, order.channel).query(order.out_trade_no)
    except ChannelError as exc:
        log.warning("query failed", extra={"out_trade_no": order.out_trade_no, "code": exc.code})
        return "error"
    if trade.state in (TradeState.PAID, TradeState.REFUNDED):
        applied = apply_payment(session, trade=trade, channel=order.channel, actor="reconciler")
        if applied.reason == "amount_mismatch":
            log.error("channel reports another amount", extra={"out_trade_no": order.out_trade_no})
            return "error"
        return "paid"
    result = str(trade.state)
    if result == "closed" or (result == "not_found" and order.expires_at <= utcnow()):
        # Closed at the channel (or never created there and past its time): close here.
        target = OrderStatus.CLOSED if result == "closed" else OrderStatus.EXPIRED
        transition_order(
            session,
            order,
            target,
            actor="reconciler",
            reason=f"channel_{result}",
            values={"closed_at": utcnow()},
        )
        return str(target)
    return result


def expire_orders(db: Database, settings: Config, *, limit: int = BATCH) -> dict[str, int]:
    """Close at the channel, then mark expired, every order past its `expires_at`."""
    counts: dict[str, int] = {}
    for order in _candidates(db, where=[PaymentOrder.expires_at <= utcnow()], limit=limit):
        result = close_at_channel(
            db,
            settings,
            order,
            reason="expired",
            actor="expirer",
            target=OrderStatus.EXPIRED,
        )
        counts[result] = counts.get(result, 0) + 1
    return counts


# Refunds whose result never arrived ------------------------------------------------------------

REFUND_HEALER = "refund-reconciler"


@dataclass(frozen=True)
class _StuckRefund:
    refund_id: int
    out_refund_no: str
    out_trade_no: str
    channel: str
    accepted_at: datetime  # updated_at: when the channel accepted it (moved to processing)


# A refund the channel is still working on (a bank card refund can take days) is asked about
# again after half its age so far, within these bounds: soon while young, a few times a day
# when old, instead of once every worker round for days.
ASK_AGAIN_MAX = timedelta(hours=6)


def ask_again_after(age: timedelta, *, least: timedelta) -> timedelta:
    """How long to wait before asking the channel again about a refund of this age."""
    return min(ASK_AGAIN_MAX, max(least, age / 2))


def _stuck_refunds(
    db: Database, *, cutoff: datetime, limit: int, due_only: bool
) -> list[_StuckRefund]:
    """Refunds `processing` since before `cutoff` (updated_at is when the channel accepted);
    with `due_only`, only those whose next question is due (`next_attempt_at`)."""
    query = (
        select(
            Refund.id,
            Refund.out_refund_no,
            PaymentOrder.out_trade_no,
            PaymentOrder.channel,
            Refund.updated_at,
        )
        .join(PaymentOrder, PaymentOrder.id == Refund.order_id)
        .where(Refund.state == RefundState.PROCESSING, Refund.updated_at <= cutoff)
        .order_by(Refund.updated_at, Refund.id)
        .limit(limit)
    )
    if due_only:
        query = query.where(Refund.next_attempt_at <= utcnow())
    with db.job() as session:
        rows = session.execute(query).all()
    return [_StuckRefund(*row) for row in rows]


def reconcile_refunds(
    db: Database, settings: Config, *, older_than: timedelta | None = None, limit: int = BATCH
) -> dict[str, int]:
    """Query the channel for refunds `processing` longer than `older_than`; book final answers.

    Without `older_than` (the worker), a refund the channel is still working on is asked about
    again only when due: after half its age so far, between RECONCILE_REFUNDS_AFTER_MINUTES and
    six hours (`ask_again_after`). An explicit `older_than` (an operator's
    `--older-than-minutes`) asks about every such refund now.

    Returns counts: succeeded / failed (booked now), processing (the channel is not done),
    resent (the channel knows no such refund: back to `requested`, for the refund processor
    to send again), not_found (the same after `REFUND_MAX_SENDS` sends: logged, left for
    finance), already_final (a notification booked it meanwhile), rejected (the answer's
    amount or order is not ours: logged and audited, nothing changed), error (the channel
    could not be asked; the next round asks again). One refund's error never stops the
    others. Commits per refund.
    """
    least = timedelta(minutes=settings.RECONCILE_REFUNDS_AFTER_MINUTES)
    age = older_than if older_than is not None else least
    counts: dict[str, int] = {}
    for stuck in _stuck_refunds(
        db, cutoff=utcnow() - age, limit=limit, due_only=older_than is None
    ):
        result = _reconcile_refund(db, settings, stuck)
        if result == "processing":
            _ask_later(db, stuck, least=least)
        counts[result] = counts.get(result, 0) + 1
    return counts


def _ask_later(db: Database, stuck: _StuckRefund, *, least: timedelta) -> None:
    """The channel is not done: the next question waits (`ask_again_after`)."""
    now = utcnow()
    wait = ask_again_after(now - stuck.accepted_at, least=least)
    with db.job() as session:
        session.execute(
            update(Refund)
            .where(Refund.id == stuck.refund_id, Refund.state == RefundState.PROCESSING)
            .values(next_attempt_at=now + wait)
            .execution_options(synchronize_session=False)
        )


def _reconcile_refund(db: Database, settings: Config, stuck: _StuckRefund) -> str:
    where = {"out_refund_no": stuck.out_refund_no, "out_trade_no": stuck.out_trade_no}
    try:
        answer = get_channel(settings, stuck.channel).query_refund(
            out_trade_no=stuck.out_trade_no, out_refund_no=stuck.out_refund_no
        )
    except ChannelError as exc:
        log.warning("refund query failed", extra={**where, "code": exc.code})
        return "error"
    if answer is None:
        return in_transaction(db, lambda session: _send_again(session, settings, stuck))
    if answer.state == "processing":
        return "processing"
    applied = in_transaction(db, lambda session: _book(session, answer))
    if applied.outcome == NotificationOutcome.DUPLICATE:
        return "already_final"
    if applied.outcome == NotificationOutcome.REJECTED:
        log.error(
            "refund query answer refused",
            extra={**where, "reason": applied.reason, "channel_amount_fen": answer.amount_fen},
        )
        return "rejected"
    return "succeeded" if applied.reason == "refund_succeeded" else "failed"


def _send_again(session: Session, settings: Config, stuck: _StuckRefund) -> str:
    """The channel accepted this refund yet has no record of it: hand it back to the refund
    processor (processing → requested, due now), which sends it again under the same
    out_refund_no — a channel refunds one out_refund_no at most once, so if the refund did
    exist after all, the second request only returns it. After `REFUND_MAX_SENDS` sends the
    refund is left `processing` for finance (logged every round; counted as not_found)."""
    where = {"out_refund_no": stuck.out_refund_no, "out_trade_no": stuck.out_trade_no}
    refund = session.scalars(
        select(Refund).where(Refund.id == stuck.refund_id).with_for_update()
    ).one()
    if refund.state != RefundState.PROCESSING:
        return "already_final" if refund.state in FINAL_REFUND_STATES else "resent"
    if refund.attempts >= settings.REFUND_MAX_SENDS:
        log.error("channel knows no such refund; sent too often, left for finance", extra=where)
        return "not_found"
    log.warning("channel knows no such refund; sending it again", extra=where)
    if not transition_refund(
        session,
        refund,
        RefundState.REQUESTED,
        actor=REFUND_HEALER,
        reason="not_found_at_channel",
        detail={"sends": refund.attempts},
        values={"next_attempt_at": utcnow()},
    ):
        raise LostRace(stuck.out_refund_no)  # in_transaction reads it again
    return "resent"


def _book(session: Session, answer: ChannelRefund) -> RefundApplied:
    """The notification's own booking; a refusal is audited like a refused notification."""
    applied = apply_refund_result(session, answer=answer, actor=REFUND_HEALER)
    if applied.outcome == NotificationOutcome.REJECTED:
        audit(
            session,
            actor=REFUND_HEALER,
            action="payments.refund.query.refused",
            subject=f"refund:{answer.out_refund_no}",
            outcome="refused",
            detail={
                "reason": applied.reason,
                "out_trade_no": answer.out_trade_no,
                "channel_amount_fen": answer.amount_fen,
                "channel_state": answer.state,
            },
        )
    return applied


def _daily_reconciliation(db: Database, settings: Config) -> dict[str, int]:
    """Yesterday's bills after 10:00 Beijing, once (api/reconciliation's service function;
    imported here, late, because reconciliation itself reads payments through its services)."""
    from api.reconciliation.daily import run_due

    return run_due(db, settings)


def _reconciliation_refunds(db: Database, settings: Config) -> dict[str, int]:
    """Settle the suspense items whose approved refund has reached a final state (a service
    function of api/reconciliation, imported late for the same reason as the daily run)."""
    from api.reconciliation.refunds import settle_refund_items

    return settle_refund_items(db)


def run_once(db: Database, settings: Config) -> dict[str, dict[str, int]]:
    """One round of every job; a failing job is logged and does not stop the others."""
    report: dict[str, dict[str, int]] = {}
    jobs: list[tuple[str, Callable[[], dict[str, int]]]] = [
        # First: a stored, unfinished notification is applied before its order is queried.
        ("sweep_callback_log", lambda: vars(sweep_unfinished(db, settings))),
        ("reconcile_open", lambda: reconcile_open(db, settings)),
        ("expire", lambda: expire_orders(db, settings)),
        ("process_refunds", lambda: process_due_refunds(db, settings)),
        ("reconcile_refunds", lambda: reconcile_refunds(db, settings)),
        ("process_stray_refunds", lambda: process_due_stray_refunds(db, settings)),
        ("reconciliation_refunds", lambda: _reconciliation_refunds(db, settings)),
        ("daily_reconciliation", lambda: _daily_reconciliation(db, settings)),
    ]
    for name, job in jobs:
        try:
            report[name] = job()
        except Exception:  # logged with traceback; the next round retries the same rows
            log.exception("payments worker job failed", extra={"job": name})
            report[name] = {"error": 1}
        finally:
            db.session.remove()
    return report


def run_worker(
    db: Database, settings: Config, *, interval: float, stop: threading.Event | None = None
) -> None:
    """Loop `run_once` every `interval` seconds until SIGTERM/SIGINT (or `stop` is set)."""
    stopping = stop or threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("payments worker stopping", extra={"signal": signum})
        stopping.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    log.info("payments worker started", extra={"interval": interval})
    while not stopping.is_set():
        report = run_once(db, settings)
        if any(v for counts in report.values() for v in counts.values()):
            log.info("payments worker round", extra={"report": report})
        stopping.wait(interval)
    log.info("payments worker stopped")
