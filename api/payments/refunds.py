"""Refunds 退费: deciding them, sending them to the channel, and booking their results.

A refund is decided inside a transaction (`request_refund`, state `requested`) — by the
settlement for duplicate payments, or by finance staff (`request_staff_refund`) — and sent
to the channel only after that transaction committed, by `process_due_refunds` (the
`payments process-refunds` command, the worker, and right after a staff request). The channel's
answer, or its later refund notification, is booked by `apply_refund_result`: only then are
the refunded contributions reversed (with their reversal tax records) and the order's refunded
amount raised — until the money has really gone back, the premium stays paid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from api import clock
from api.config import Config
from api.db import Database, utcnow
from api.errors import Conflict, InvalidInput, NotFound
from api.households.service import death_dates
from api.payments.channels import (
    ChannelError,
    ChannelRefund,
    get_channel,
    new_out_refund_no,
)
from api.payments.ledger import reverse_contributions
from api.payments.models import (
    Contribution,
    ContributionStatus,
    NotificationOutcome,
    OrderItem,
    OrderStatus,
    PaymentOrder,
    Refund,
    RefundItem,
    RefundReason,
    RefundState,
)
from api.payments.states import (
    FINAL_REFUND_STATES,
    LostRace,
    record_new_refund,
    transition_order,
    transition_refund,
)

log = logging.getLogger(__name__)

REFUND_NOTIFY_PATHS = {
    "wechat": "/api/v1/payments/notify/wechat/refund",
    "alipay": "/api/v1/payments/notify/alipay",
}
CLAIM_SECONDS = 120  # a claimed refund is retried after this if its processor died
MAX_BACKOFF_SECONDS = 3600
LIVE_STATES = (RefundState.REQUESTED, RefundState.PROCESSING, RefundState.SUCCEEDED)


class RefundableItem(Protocol):
    """An order item as far as a refund needs it (`OrderItem` or `ledger.ItemRow`)."""

    @property
    def id(self) -> int: ...
    @property
    def person_id(self) -> int: ...
    @property
    def insurance(self) -> str: ...
    @property
    def amount_fen(self) -> int: ...


class _HasId(Protocol):
    @property
    def id(self) -> int: ...


def request_refund(
    session: Session,
    *,
    order: _HasId,
    items: Sequence[RefundableItem],
    reason: str,
    actor: str,
    note: str | None = None,
    contributions: dict[int, int] | None = None,
    amount_fen: int | None = None,
    channel_total_fen: int | None = None,
) -> Refund:
    """Decide a refund of `items` of `order` (state `requested`); the channel is asked later.

    `contributions` maps order item id → the contribution the refund will reverse. A refund of
    no items (`amount_fen` instead: the excess a channel took above the order's amount) covers
    no premium; `channel_total_fen` is then the trade's total at the channel.
    """
    amount = sum(i.amount_fen for i in items) if items else (amount_fen or 0)
    if amount <= 0:
        raise InvalidInput("退费金额必须大于零", code="nothing_to_refund")
    refund = Refund(
        out_refund_no=new_out_refund_no(now=clock.now()),  # the demo's pinned date too
        order_id=order.id,
        amount_fen=amount,
        reason=str(reason),
        note=note,
        state=RefundState.REQUESTED,
        requested_by=actor,
        attempts=0,
        next_attempt_at=utcnow(),
        created_at=utcnow(),
        updated_at=utcnow(),
        channel_total_fen=channel_total_fen,
    )
    refund.items = [
        RefundItem(
            order_item_id=i.id,
            person_id=i.person_id,
            insurance=i.insurance,
            amount_fen=i.amount_fen,
            contribution_id=(contributions or {}).get(i.id),
        )
        for i in items
    ]
    session.add(refund)
    session.flush()
    record_new_refund(session, refund, actor=actor, reason=str(reason))
    return refund


@dataclass(frozen=True)
class RefundLine:
    """An item to refund: person × insurance × year (None: the order's year; a back-payment or
    a newborn's birth-year item is of an earlier year)."""

    person_id: int
    insurance: str
    year: int | None = None


def request_staff_refund(
    session: Session,
    *,
    out_trade_no: str,
    lines: Sequence[RefundLine],
    reason: str,
    note: str | None,
    actor: str,
) -> Refund:
    """Finance refunds some items of a paid order (deceased, joined employee insurance…).

    Each line must be an item of the order with a paid contribution booked by this order and
    no refund already under way for it; the refund covers exactly those items.
    """
    if reason not in (
        RefundReason.DECEASED,
        RefundReason.EMPLOYEE_INSURED,
        RefundReason.DUPLICATE,
        RefundReason.OTHER,
    ):
        raise InvalidInput(errors={"json": {"reason": ["未知的退费原因"]}})
    order = session.scalars(
        select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no).with_for_update()
    ).one_or_none()
    if order is None:
        raise NotFound("未找到该订单", code="order_not_found")
    if order.status not in (
        OrderStatus.PAID,
        OrderStatus.PARTIALLY_REFUNDED,
        OrderStatus.DUPLICATE,
    ):
        raise Conflict(f"订单状态为 {order.status}，不能退费", code="order_not_refundable")
    if not lines:
        raise InvalidInput(errors={"json": {"items": ["至少选择一项"]}})
    by_key = {(i.person_id, i.insurance, i.year): i for i in order.items}
    paid = dict(
        session.execute(
            select(Contribution.order_item_id, Contribution.id).where(
                Contribution.order_id == order.id,
                Contribution.status == ContributionStatus.PAID,
            )
        ).all()
    )
    busy = set(
        session.scalars(
            select(RefundItem.order_item_id)
            .join(Refund, Refund.id == RefundItem.refund_id)
            .where(Refund.order_id == order.id, Refund.state.in_(LIVE_STATES))
        )
    )
    chosen: list[OrderItem] = []
    errors: dict[str, list[str]] = {}
    for n, line in enumerate(lines):
        item = by_key.get((line.person_id, line.insurance, line.year or order.year))
        if item is None:
            errors[str(n)] = ["该订单没有这一项"]
        elif item.id in busy:
            errors[str(n)] = ["这一项已在退费中或已退费"]
        elif item.id not in paid:
            errors[str(n)] = ["这一项没有由本订单入账的缴费记录"]
        elif item in chosen:
            errors[str(n)] = ["重复的项目"]
        else:
            chosen.append(item)
    if errors:
        raise InvalidInput(
            "退费项目有误", code="invalid_refund_items", errors={"json": {"items": errors}}
        )
    if reason == RefundReason.DECEASED:
        died = death_dates(session, person_ids=[i.person_id for i in chosen])
        alive = [str(n) for n, item in enumerate(chosen) if died.get(item.person_id) is None]
        if alive:
            raise InvalidInput(
                "没有该参保人的死亡登记，不能以“死亡”为由退费",
                code="no_death_record",
                errors={"json": {"items": {n: ["该参保人没有死亡日期"] for n in alive}}},
            )
    return request_refund(
        session,
        order=order,
        items=chosen,
        reason=reason,
        actor=actor,
        note=note,
        contributions={i.id: paid[i.id] for i in chosen},
    )


# Sending refunds to the channel ---------------------------------------------------------------


def process_due_refunds(
    db: Database, settings: Config, *, limit: int = 50, only: Sequence[int] | None = None
) -> dict[str, int]:
    """Send every due `requested` refund to its channel; returns counts by result.

    Commits (it is a worker job): claim → commit → call the channel → book the answer → commit.
    A claim pushes `next_attempt_at` forward, so a crashed processor's refund is retried and
    two processors never send one refund at the same time; the channel refunds an
    `out_refund_no` once, so even a retry after a lost answer cannot pay twice.
    """
    counts: dict[str, int] = {}
    for refund_id in _claim_due(db, limit=limit, only=only):
        result = _send(db, settings, refund_id)
        counts[result] = counts.get(result, 0) + 1
    return counts


def _claim_due(db: Database, *, limit: int, only: Sequence[int] | None) -> list[int]:
    claimed: list[int] = []
    with db.job() as session:
        now = utcnow()
        query = (
            select(Refund.id)
            .where(Refund.state == RefundState.REQUESTED, Refund.next_attempt_at <= now)
            .order_by(Refund.next_attempt_at, Refund.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if only is not None:
            query = query.where(Refund.id.in_(only))
        for refund_id in session.scalars(query).all():
            won = session.execute(
                update(Refund)
                .where(
                    Refund.id == refund_id,
                    Refund.state == RefundState.REQUESTED,
                    Refund.next_attempt_at <= now,
                )
                .values(
                    next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS),
                    attempts=Refund.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if won.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(refund_id)
    return claimed


def _send(db: Database, settings: Config, refund_id: int) -> str:
    with db.job() as session:
        refund = session.get(Refund, refund_id)
        assert refund is not None
        order = session.get(PaymentOrder, refund.order_id)
        assert order is not None
        notify_url = settings.PUBLIC_BASE_URL.rstrip("/") + REFUND_NOTIFY_PATHS[order.channel]
        out_trade_no, out_refund_no = order.out_trade_no, refund.out_refund_no
        total_fen = refund.channel_total_fen or order.paid_amount_fen or order.amount_fen
        refund_fen, reason = refund.amount_fen, refund.note or refund.reason
        channel_name, attempts = order.channel, refund.attempts
    try:
        answer = get_channel(settings, channel_name).refund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            total_fen=total_fen,
            refund_fen=refund_fen,
            reason=reason,
            notify_url=notify_url,
        )
    except ChannelError as exc:
        log.warning(
            "refund refused by the channel",
            extra={"out_refund_no": out_refund_no, "code": exc.code},
        )
        with db.job() as session:
            refund = session.get(Refund, refund_id)
            assert refund is not None
            if exc.retryable or exc.code in ("NOTENOUGH", "network"):
                delay = min(MAX_BACKOFF_SECONDS, 30 * 2 ** max(0, attempts - 1))
                refund.last_error = str(exc)[:200]
                refund.next_attempt_at = utcnow() + timedelta(seconds=delay)
                return "retry"
            transition_refund(
                session,
                refund,
                RefundState.FAILED,
                actor="system",
                reason="channel_refused",
                values={"last_error": str(exc)[:200]},
            )
        return "failed"
    with db.job() as session:
        applied = apply_refund_result(session, answer=answer, actor="refund-processor")
    return applied.reason or str(applied.outcome)


# Booking refund results (processor answers and refund notifications) ---------------------------


@dataclass(frozen=True)
class RefundApplied:
    outcome: NotificationOutcome
    reason: str | None = None
    order_id: int | None = None


def apply_refund_result(session: Session, *, answer: ChannelRefund, actor: str) -> RefundApplied:
    """Book what the channel says about one refund (its answer or its notification).

    Idempotent: a refund already final is a duplicate; the amount and order must match ours.
    """
    refund = session.scalars(
        select(Refund).where(Refund.out_refund_no == answer.out_refund_no).with_for_update()
    ).one_or_none()
    if refund is None:
        return RefundApplied(NotificationOutcome.REJECTED, "unknown_refund")
    order = session.scalars(
        select(PaymentOrder)
        .where(PaymentOrder.id == refund.order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if order.out_trade_no != answer.out_trade_no:
        return RefundApplied(NotificationOutcome.REJECTED, "refund_order_mismatch", order.id)
    if answer.amount_fen != refund.amount_fen:
        return RefundApplied(NotificationOutcome.REJECTED, "amount_mismatch", order.id)
    if refund.state in FINAL_REFUND_STATES:
        return RefundApplied(NotificationOutcome.DUPLICATE, None, order.id)
    values: dict[str, Any] = {"channel_refund_id": answer.refund_id} if answer.refund_id else {}
    if answer.state == "processing":
        if refund.state == RefundState.PROCESSING:
            return RefundApplied(NotificationOutcome.DUPLICATE, None, order.id)
        # The healer's questions about it are timed from its acceptance, not from the claim.
        values["next_attempt_at"] = utcnow()
        # The refund row is locked above, so these moves cannot lose a race; were one to, it
        # is reported as a duplicate (someone else moved it), never as applied.
        if not transition_refund(
            session, refund, RefundState.PROCESSING, actor=actor, reason="accepted", values=values
        ):
            return RefundApplied(NotificationOutcome.DUPLICATE, None, order.id)
        return RefundApplied(NotificationOutcome.APPLIED, "refund_processing", order.id)
    if answer.state in ("closed", "failed"):
        if not transition_refund(
            session, refund, RefundState.FAILED, actor=actor, reason=f"channel_{answer.state}"
        ):
            return RefundApplied(NotificationOutcome.DUPLICATE, None, order.id)
        return RefundApplied(NotificationOutcome.APPLIED, "refund_failed", order.id)
    if answer.succeeded_at is not None:
        values["succeeded_at"] = answer.succeeded_at
    if not transition_refund(
        session, refund, RefundState.SUCCEEDED, actor=actor, reason="succeeded", values=values
    ):
        return RefundApplied(NotificationOutcome.DUPLICATE, None, order.id)
    _refund_succeeded(session, order=order, refund=refund, actor=actor)
    return RefundApplied(NotificationOutcome.APPLIED, "refund_succeeded", order.id)


def _refund_succeeded(session: Session, *, order: PaymentOrder, refund: Refund, actor: str) -> None:
    """The money went back: reverse what it covered and move the order.

    An excess refund (`channel_excess`: what the channel took above the order's amount) covers
    no premium: the order keeps its status and its refunded amount."""
    if refund.reason == RefundReason.CHANNEL_EXCESS:
        return
    reverse_contributions(
        session,
        [i.contribution_id for i in refund.items if i.contribution_id is not None],
        reason=refund.reason,
    )
    session.execute(
        update(PaymentOrder)
        .where(PaymentOrder.id == order.id)
        .values(refunded_fen=PaymentOrder.refunded_fen + refund.amount_fen)
        .execution_options(synchronize_session=False)
    )
    session.refresh(order)
    paid = order.paid_amount_fen or order.amount_fen
    if order.refunded_fen >= paid:
        target: str | None = OrderStatus.REFUNDED
    elif order.status in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED):
        target = OrderStatus.PARTIALLY_REFUNDED
    else:
        target = None  # duplicate / paid_after_close keep their mark until fully refunded
    if target is not None and not transition_order(
        session,
        order,
        target,
        actor=actor,
        reason=f"refund:{refund.reason}",
        refund=refund,
        detail={"out_refund_no": refund.out_refund_no, "amount_fen": refund.amount_fen},
    ):
        raise LostRace(order.out_trade_no)


def refunded_total(session: Session, order_id: int) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.order_id == order_id, Refund.state == RefundState.SUCCEEDED
        )
    )
    return int(total or 0)
