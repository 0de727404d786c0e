"""Healing 补单: what keeps a lost notification from costing anything.

Gateways deliver at least once, concurrently, or never (PROTOCOLS.md §4). So:
- `reconcile_open` asks the channel about every order still open past
  `RECONCILE_AFTER_MINUTES` and applies a payment it reports through the very function a
  notification uses (`settlement.apply_payment`): whichever comes first applies, the other is a
  duplicate, and a payment is booked exactly once;
- `expire_orders` closes orders past their `expires_at` at the channel (WeChat closeorder /
  Alipay trade.close, §1.6, §6.4), then here; a close refused because the order was paid
  applies that payment instead;
- `run_worker` runs both and the refund processor in a loop (`flask --app wsgi payments
  worker`), removing the session after every job (STYLE.md 4a) and stopping cleanly on
  SIGTERM / SIGINT between jobs.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from types import FrameType

from sqlalchemy import select

from api.config import Config
from api.db import Database, utcnow
from api.payments.models import OPEN_STATES, OrderStatus, PaymentOrder
from api.payments.notify import in_transaction
from api.payments.orders import apply_from_query, close_at_channel
from api.payments.refunds import process_due_refunds
from api.payments.states import transition_order

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


def run_once(db: Database, settings: Config) -> dict[str, dict[str, int]]:
    """One round of every job; a failing job is logged and does not stop the others."""
    report: dict[str, dict[str, int]] = {}
    jobs: list[tuple[str, Callable[[], dict[str, int]]]] = [
        ("reconcile_open", lambda: reconcile_open(db, settings)),
        ("expire", lambda: expire_orders(db, settings)),
        ("process_refunds", lambda: process_due_refunds(db, settings)),
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
