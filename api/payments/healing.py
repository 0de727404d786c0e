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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.config import Config
from api.db import Database, utcnow
from api.payments.channels import ChannelError, ChannelRefund, get_channel
from api.payments.models import (
    OPEN_STATES,
    NotificationOutcome,
    OrderStatus,
    PaymentOrder,
    Refund,
    RefundState,
)
from api.payments.notify import in_transaction, sweep_unfinished
from api.payments.orders import apply_from_query, close_at_channel
from api.payments.refunds import RefundApplied, apply_refund_result, process_due_refunds
from api.payments.states import (
    FINAL_REFUND_STATES,
    LostRace,
    transition_order,
    transition_refund,
)

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


def reconcile_open(
    db: Database, settings: Config, *, older_than: timedelta | None = None, limit: int = BATCH
) -> dict[str, int]:
    """Query the channel for orders open longer than `older_than`; apply what it says."""
    age = (
        older_than
        if older_than is not None
        else timedelta(minutes=settings.RECONCILE_AFTER_MINUTES)
    )
    counts: dict[str, int] = {}
    cutoff = utcnow() - age
    for order in _candidates(db, where=[PaymentOrder.created_at <= cutoff], limit=limit):
        result = apply_from_query(
            db, settings, order.out_trade_no, order.channel, actor="reconciler"
        )
        if result == "closed" or (result == "not_found" and order.expires_at <= utcnow()):
            # Closed at the channel (or never created there and past its time): close here.
            result = _close_here(
                db,
                order.id,
                OrderStatus.CLOSED if result == "closed" else OrderStatus.EXPIRED,
                reason=f"channel_{result}",
            )
        counts[result] = counts.get(result, 0) + 1
    return counts


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


def _close_here(db: Database, order_id: int, target: str, *, reason: str) -> str:
    def work(session):  # type: ignore[no-untyped-def]
        order = session.scalars(
            select(PaymentOrder).where(PaymentOrder.id == order_id).with_for_update()
        ).one()
        if order.status not in OPEN_STATES:
            return "gone"
        transition_order(
            session,
            order,
            target,
            actor="reconciler",
            reason=reason,
            values={"closed_at": utcnow()},
        )
        return str(target)

    result: str = in_transaction(db, work)
    return result


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
