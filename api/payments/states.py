"""The payments state machine 状态机: the only place order and refund states change.

Every change is a conditional UPDATE (`... WHERE id = :id AND status = :from`) that returns
whether this transaction won: two copies of one notification, a notification racing the
reconciler, or two staff members clicking at once cannot both move the same order. A
transition not in the tables below is a bug and raises `IllegalTransition`. Every transition
writes an `OrderEvent` (the order's history, shown to finance) and an `AuditEvent` (the
append-only audit log, DOMAIN.md "Prohibitions").

Orders::

    created ──prepay ok──▶ open ──payment──▶ paid ──refund──▶ partially_refunded ─▶ refunded
       │                    │  ╲
       │ prepay failed      │   ╲ payment for items already paid ▶ duplicate ─▶ (partially_)refunded
       ▼                    ▼
     failed            closed / expired ──payment anyway──▶ paid_after_close ─▶ refunded

`created` may also go straight to closed/expired (superseded or abandoned before prepay
answered); a payment on a `created` order (prepay answered but we crashed before recording
it) is a normal payment.

Refunds (and stray refunds, 不明来款退回, which have no order: their moves are audited only)::

    requested ──channel accepted──▶ processing ──▶ succeeded | failed
        ╰──────── synchronous result (Alipay) ──────▶ succeeded | failed
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from api.audit.models import AuditEvent
from api.db import utcnow
from api.payments.models import (
    OrderEvent,
    OrderStatus,
    PaymentOrder,
    Refund,
    RefundState,
    StrayRefund,
)

S = OrderStatus
ORDER_TRANSITIONS: Mapping[str, frozenset[str]] = {
    S.CREATED: frozenset({S.OPEN, S.FAILED, S.CLOSED, S.EXPIRED, S.PAID, S.DUPLICATE}),
    S.OPEN: frozenset({S.PAID, S.DUPLICATE, S.CLOSED, S.EXPIRED}),
    S.CLOSED: frozenset({S.PAID_AFTER_CLOSE}),
    S.EXPIRED: frozenset({S.PAID_AFTER_CLOSE}),
    S.FAILED: frozenset({S.PAID_AFTER_CLOSE}),
    S.PAID: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.DUPLICATE: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PAID_AFTER_CLOSE: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
}

R = RefundState
REFUND_TRANSITIONS: Mapping[str, frozenset[str]] = {
    R.REQUESTED: frozenset({R.PROCESSING, R.SUCCEEDED, R.FAILED}),
    # Back to requested only when the channel has no record of a refund it accepted (the
    # refund healer): the processor then sends it again under the same out_refund_no.
    R.PROCESSING: frozenset({R.SUCCEEDED, R.FAILED, R.REQUESTED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
}

# A refund in one of these is done: nothing moves it again.
FINAL_REFUND_STATES = frozenset(state for state, to in REFUND_TRANSITIONS.items() if not to)

# States in which the household's money is with us for this order (the payment happened).
PAID_STATES = frozenset({S.PAID, S.DUPLICATE, S.PAID_AFTER_CLOSE, S.PARTIALLY_REFUNDED, S.REFUNDED})
# States a payment notification may still move (the order was never paid).
UNPAID_STATES = frozenset({S.CREATED, S.OPEN, S.CLOSED, S.EXPIRED, S.FAILED})


class IllegalTransition(RuntimeError):
    """A transition the state machine does not allow: a bug in the caller, never input."""


class LostRace(Exception):
    """Another transaction changed the row first: roll back, re-read and decide again."""


def transition_order(
    session: Session,
    order: PaymentOrder | Any,
    to: str,
    *,
    actor: str,
    reason: str = "",
    detail: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    refund: Refund | None = None,
) -> bool:
    """Move `order` from the status it was read in to `to`; True if this transaction won.

    `values` are further columns set in the same UPDATE (paid_at, transaction_id…). On a lost
    race nothing is written and the caller must re-read the order in a fresh transaction.
    """
    source = order.status
    if to not in ORDER_TRANSITIONS.get(source, frozenset()):
        raise IllegalTransition(f"order {order.out_trade_no}: {source} → {to}")
    now = utcnow()
    changes = {"status": str(to), "updated_at": now, **(values or {})}
    history = _history(
        entity="order",
        order_id=order.id,
        refund_id=refund.id if refund is not None else None,
        subject=f"order:{order.out_trade_no}",
        source=source,
        to=str(to),
        actor=actor,
        reason=reason,
        detail=detail,
        at=now,
    )
    if not _move(session, PaymentOrder, "status", order.id, source, changes, history):
        return False
    _remember(order, changes)
    return True


@lru_cache(maxsize=64)
def _update_statement(model: type, state_column: str, columns: tuple[str, ...]) -> Any:
    """`UPDATE … SET <columns> WHERE id = :w_id AND <state> = :w_from`, built once per shape
    (the notification hot path runs it thousands of times a minute)."""
    table = model.__table__  # type: ignore[attr-defined]
    return (
        update(table)
        .where(table.c.id == bindparam("w_id"), table.c[state_column] == bindparam("w_from"))
        .values({name: bindparam(f"v_{name}") for name in columns})
    )


@lru_cache(maxsize=64)
def _move_statement(model: type, state_column: str, columns: tuple[str, ...]) -> Any:
    """PostgreSQL: the conditional UPDATE and its two history rows as ONE statement.

    ``WITH moved AS (UPDATE … RETURNING id), e AS (INSERT … SELECT … FROM moved),
    a AS (INSERT … SELECT … FROM moved) SELECT count(*) FROM moved``: the history rows are
    written exactly when the update matched, as in the three-statement form, in one round
    trip instead of three (a payment notification's transition is on its hot path).
    """
    table = model.__table__  # type: ignore[attr-defined]
    moved = _update_statement(model, state_column, columns).returning(table.c.id).cte("moved")
    history = [
        insert(target)
        .from_select(
            list(names),
            select(
                *(bindparam(f"{prefix}{name}", type_=target.c[name].type) for name in names)
            ).select_from(moved),
        )
        .cte(f"{prefix}rows")
        for target, names, prefix in (
            (_EVENTS, _EVENT_COLUMNS, "e_"),
            (_AUDIT, _AUDIT_COLUMNS, "a_"),
        )
    ]
    return select(func.count()).select_from(moved).add_cte(*history)


def _move(
    session: Session,
    model: type,
    state_column: str,
    row_id: int,
    source: str,
    changes: dict[str, Any],
    history: tuple[dict[str, Any], dict[str, Any]],
) -> bool:
    """The conditional UPDATE; when it matched, the order event and the audit row."""
    columns = tuple(sorted(changes))
    params = {f"v_{k}": changes[k] for k in columns}
    params.update(w_id=row_id, w_from=source)
    connection = session.connection()
    event, audit = history
    if connection.dialect.name == "postgresql":
        params.update({f"e_{name}": value for name, value in event.items()})
        params.update({f"a_{name}": value for name, value in audit.items()})
        statement = _move_statement(model, state_column, columns)
        return bool(connection.execute(statement, params).scalar_one() == 1)
    result = connection.execute(_update_statement(model, state_column, columns), params)
    if result.rowcount != 1:
        return False
    connection.execute(_EVENT_INSERT, event)
    connection.execute(_AUDIT_INSERT, audit)
    return True


def _remember(row: Any, changes: dict[str, Any]) -> None:
    """Reflect the UPDATE on the object in hand, without making the ORM write it again."""
    mapped = hasattr(row, "_sa_instance_state")
    for key, value in changes.items():
        if mapped:
            set_committed_value(row, key, value)
        else:
            setattr(row, key, value)


def transition_refund(
    session: Session,
    refund: Refund,
    to: str,
    *,
    actor: str,
    reason: str = "",
    detail: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
) -> bool:
    """Move `refund` from the state it was read in to `to`; True if this transaction won."""
    source = refund.state
    if to not in REFUND_TRANSITIONS.get(source, frozenset()):
        raise IllegalTransition(f"refund {refund.out_refund_no}: {source} → {to}")
    now = utcnow()
    changes: dict[str, Any] = {"state": str(to), "updated_at": now, **(values or {})}
    if to == R.SUCCEEDED and "succeeded_at" not in changes:
        changes["succeeded_at"] = now
    history = _history(
        entity="refund",
        order_id=refund.order_id,
        refund_id=refund.id,
        subject=f"refund:{refund.out_refund_no}",
        source=source,
        to=str(to),
        actor=actor,
        reason=reason,
        detail=detail,
        at=now,
    )
    if not _move(session, Refund, "state", refund.id, source, changes, history):
        return False
    _remember(refund, changes)
    return True


def transition_stray_refund(
    session: Session,
    stray: StrayRefund,
    to: str,
    *,
    actor: str,
    reason: str = "",
    values: dict[str, Any] | None = None,
) -> bool:
    """Move a stray refund as `transition_refund` moves a refund (same table of moves); it has
    no order, so its history is the audit log alone."""
    source = stray.state
    if to not in REFUND_TRANSITIONS.get(source, frozenset()):
        raise IllegalTransition(f"stray refund {stray.out_refund_no}: {source} → {to}")
    now = utcnow()
    changes: dict[str, Any] = {"state": str(to), "updated_at": now, **(values or {})}
    if to == R.SUCCEEDED and "succeeded_at" not in changes:
        changes["succeeded_at"] = now
    table: Any = StrayRefund.__table__
    moved = session.execute(
        update(table)
        .where(table.c.id == stray.id, table.c.state == source)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _, audit = _history(
        entity="stray_refund",
        order_id=0,
        refund_id=None,
        subject=f"stray_refund:{stray.out_refund_no}",
        source=source,
        to=str(to),
        actor=actor,
        reason=reason,
        detail={"out_trade_no": stray.out_trade_no, "amount_fen": stray.amount_fen},
        at=now,
    )
    session.connection().execute(_AUDIT_INSERT, audit)
    _remember(stray, changes)
    return True


def record_new_stray_refund(session: Session, stray: StrayRefund, *, actor: str) -> None:
    """A stray refund is born `requested`: the audit log says so."""
    _, audit = _history(
        entity="stray_refund",
        order_id=0,
        refund_id=None,
        subject=f"stray_refund:{stray.out_refund_no}",
        source="",
        to=stray.state,
        actor=actor,
        reason=stray.reason,
        detail={
            "channel": stray.channel,
            "out_trade_no": stray.out_trade_no,
            "amount_fen": stray.amount_fen,
        },
        at=stray.created_at or utcnow(),
    )
    session.connection().execute(_AUDIT_INSERT, audit)


def record_new_refund(session: Session, refund: Refund, *, actor: str, reason: str) -> None:
    """A refund is born `requested`: its history starts with that event (from "")."""
    _record(
        session,
        _history(
            entity="refund",
            order_id=refund.order_id,
            refund_id=refund.id,
            subject=f"refund:{refund.out_refund_no}",
            source="",
            to=refund.state,
            actor=actor,
            reason=reason,
            detail={"amount_fen": refund.amount_fen},
            at=refund.created_at or utcnow(),
        ),
    )


def record_new_order(session: Session, order: PaymentOrder, *, actor: str) -> None:
    """An order is born `created`: its history starts with that event (from "")."""
    _record(
        session,
        _history(
            entity="order",
            order_id=order.id,
            refund_id=None,
            subject=f"order:{order.out_trade_no}",
            source="",
            to=order.status,
            actor=actor,
            reason="created",
            detail={"amount_fen": order.amount_fen, "channel": order.channel},
            at=order.created_at or utcnow(),
        ),
    )


def _history(
    *,
    entity: str,
    order_id: int,
    refund_id: int | None,
    subject: str,
    source: str,
    to: str,
    actor: str,
    reason: str,
    detail: dict[str, Any] | None,
    at: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The order event row and the audit row of one transition (plain rows, no ORM)."""
    event = {
        "order_id": order_id,
        "refund_id": refund_id,
        "entity": entity,
        "from_state": source,
        "to_state": to,
        "actor": actor,
        "reason": reason[:64],
        "detail": detail,
        "at": at,
    }
    # The audit log row, written as `api.audit.service.record` would write it.
    audit = {
        "at": at,
        "actor": actor,
        "action": f"payments.{entity}.{to}" if source else f"payments.{entity}.created",
        "subject": subject,
        "outcome": "ok",
        "detail": {"from": source, "to": to, "reason": reason, **(detail or {})},
        "remote_addr": None,
    }
    return event, audit


def _record(session: Session, history: tuple[dict[str, Any], dict[str, Any]]) -> None:
    event, audit = history
    connection = session.connection()
    connection.execute(_EVENT_INSERT, event)
    connection.execute(_AUDIT_INSERT, audit)


_EVENTS: Any = OrderEvent.__table__
_AUDIT: Any = AuditEvent.__table__
_EVENT_COLUMNS = (
    "order_id",
    "refund_id",
    "entity",
    "from_state",
    "to_state",
    "actor",
    "reason",
    "detail",
    "at",
)
_AUDIT_COLUMNS = ("at", "actor", "action", "subject", "outcome", "detail", "remote_addr")
_EVENT_INSERT = insert(_EVENTS)
_AUDIT_INSERT = insert(_AUDIT)
