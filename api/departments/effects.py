"""What an applied department change does, each exactly once and audited (issue 13 part 2).

- Becomes government-paid (代缴) before paying: the person owes nothing any more (the quote's
  rule says so on the premiums page), and any open order with an item of theirs is closed —
  after the apply commits, through payments' `close_orders` (the channel first, then here).
  One `order_closed` effect per person × order.
- Already paid themselves: nothing happens here; the person keeps that contribution and the
  department's batch lists them as 个人已缴，代缴资金退付个人 with the government's share
  (`batches`), never a second contribution.
- Death (公安): the date is recorded on the person (households service); their open orders are
  closed (nothing unpaid is asked any more: the rules quote a dead person nothing); each paid
  contribution the refund rules say goes back (DOMAIN.md: medical when the death was before
  the insurance year began; pension when it was paid after the death) is put in finance's
  refund queue: an online payment through payments' staff refund (reason `deceased`); a
  government one as a reversal line of its department's next batch (`batches`); an agent or
  counter payment is recorded as `death_refund_manual` for the town (its cash refund is not
  built here). One effect per person × contribution.
- Removed from a list after the government contribution was booked: the reversal is a line of
  the department's next batch, reversed when finance approves (never automatically in bulk).

Uniqueness of `department_change_effects (kind, person_id, ref)` makes each effect happen once
even when two uploads of different departments race; each insert runs in a savepoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.clock import BEIJING
from api.db import utcnow
from api.departments.models import ChangeEffect, DepartmentUpload
from api.errors import DomainError
from api.payments import orders as payment_orders
from api.payments import refunds as payment_refunds
from api.payments.government import PaidFact, paid_facts
from api.payments.models import RefundReason

log = logging.getLogger(__name__)
ONLINE = ("wechat", "alipay")


def once(
    session: Session,
    *,
    kind: str,
    person_id: int,
    ref: str,
    upload: DepartmentUpload,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Record an effect; False when it was already recorded (by anyone, even concurrently)."""
    try:
        with session.begin_nested():
            session.add(
                ChangeEffect(
                    kind=kind,
                    person_id=person_id,
                    ref=ref[:64],
                    upload_id=upload.id,
                    detail=detail or {},
                    at=utcnow(),
                )
            )
            session.flush()
    except IntegrityError:
        return False
    return True


def became_government(
    session: Session, *, upload: DepartmentUpload, person_ids: list[int], actor: str
) -> list[int]:
    """The open orders to close because these persons became government-paid."""
    to_close: list[int] = []
    items = payment_orders.open_items_of(session, person_ids=person_ids, year=upload.year)
    for item in items:
        if once(
            session,
            kind="order_closed",
            person_id=item.person_id,
            ref=item.out_trade_no,
            upload=upload,
            detail={"reason": "government_paid", "insurance": item.insurance},
        ):
            to_close.append(item.order_id)
            audit(
                session,
                actor=actor,
                action="departments.effect.order_closed",
                subject=f"order:{item.out_trade_no}",
                detail={
                    "person_id": item.person_id,
                    "upload_id": upload.id,
                    "reason": "government_paid",
                },
            )
    return to_close


@dataclass
class DeathOutcome:
    close_order_ids: list[int] = field(default_factory=list)
    refunds: int = 0


def refundable_after_death(fact: PaidFact, died_on: date) -> bool:
    """DOMAIN.md "Who is insured": medical is refunded when the death was before the insurance
    year began (covered until death otherwise); pension when it was paid after the death."""
    if fact.insurance == "medical":
        return died_on < date(fact.year, 1, 1)
    return fact.paid_at.astimezone(BEIJING).date() > died_on


def death(
    session: Session, *, upload: DepartmentUpload, person_id: int, died_on: date, actor: str
) -> DeathOutcome:
    """Close the dead person's open orders and queue the refunds the rules allow."""
    outcome = DeathOutcome()
    once(
        session,
        kind="death_recorded",
        person_id=person_id,
        ref=died_on.isoformat(),
        upload=upload,
    )
    for item in payment_orders.open_items_of(session, person_ids=[person_id], year=upload.year):
        if once(
            session,
            kind="order_closed",
            person_id=person_id,
            ref=item.out_trade_no,
            upload=upload,
            detail={"reason": "deceased"},
        ):
            outcome.close_order_ids.append(item.order_id)
    for fact in paid_facts(session, person_ids=[person_id]):
        if not refundable_after_death(fact, died_on):
            continue
        if fact.source in ONLINE and fact.out_trade_no:
            kind = "death_refund"
        elif fact.source == "government":
            kind = "death_reversal"  # a reverse line of the paying department's next batch
        else:
            kind = "death_refund_manual"  # agent / counter cash: the town refunds (not built)
        if not once(
            session,
            kind=kind,
            person_id=person_id,
            ref=str(fact.id),
            upload=upload,
            detail={"insurance": fact.insurance, "year": fact.year, "source": fact.source},
        ):
            continue
        detail: dict[str, Any] = {"contribution_id": fact.id, "kind": kind, "upload_id": upload.id}
        if kind == "death_refund":
            assert fact.out_trade_no is not None
            try:
                with session.begin_nested():
                    refund = payment_refunds.request_staff_refund(
                        session,
                        out_trade_no=fact.out_trade_no,
                        lines=[
                            payment_refunds.RefundLine(
                                person_id=person_id, insurance=fact.insurance, year=fact.year
                            )
                        ],
                        reason=RefundReason.DECEASED,
                        note=f"公安死亡信息（名单 {upload.id}）",
                        actor=actor,
                    )
                detail["out_refund_no"] = refund.out_refund_no
                outcome.refunds += 1
            except DomainError as exc:  # already refunding, order state: recorded, not lost
                detail["refused"] = exc.code
        audit(
            session,
            actor=actor,
            action="departments.effect.death",
            subject=f"person:{person_id}",
            detail=detail,
        )
    return outcome


def close_after_commit(
    db: Any, settings: Any, *, order_ids: list[int], actor: str
) -> dict[str, int]:
    """After the apply committed: close the orders its changes made wrong (payments' service
    function, which asks the channel first). A channel that cannot be reached leaves the order
    open; it then expires, and a payment made on it meanwhile is the person's own (reimbursed
    through the batch)."""
    if not order_ids:
        return {}
    return payment_orders.close_orders(
        db, settings, order_ids=order_ids, reason="department_list", actor=actor
    )
