"""Payment orders 缴费订单: creating one, closing the previous one, expiring stale ones.

THIS FLOW COMMITS BEFORE IT CALLS THE GATEWAY (STYLE.md 4): the order and its items are
committed in state `created` before the prepay request goes out, so whatever the gateway does
next — answers, times out, or lets the resident pay while we crash — the order it refers to
exists and the notification or the reconciler can find it. Prepay success moves the order to
`open`; a prepay failure moves it to `failed` and answers 502 `upstream_error`.

Rules (DESIGN.md "The payment path", DOMAIN.md):
- amounts come only from the policy and the household's state on `api.clock.today()`
  (`pricing.dues`); the client never sends an amount;
- medical covers every due, unpaid member of the household or nobody; pension covers the
  members with a chosen tier who owe something; members the government pays for owe 0 and
  are not items; an order for nothing owed is refused before any gateway call;
- nothing changes unless a new order is made: a request for nothing owed is refused before
  any open order is touched, and a request for exactly what the payer's open order already
  covers (same items, amounts, channel and scene) is answered with that order;
- one open order per household (a partial unique index backs it): a new order first closes
  the previous one at its channel. If the channel says the previous one is already paid, that
  payment is applied (the settlement path) and the new order is made for what is still owed —
  or refused with 409 `already_paid` when nothing is left;
- the channel must be one the account can use: a WeChat login pays with WeChat Pay (the
  mini-program may use nothing else, PROTOCOLS.md §5.10), an Alipay login with Alipay
  (`miniprogram` by default; `wap` and `qr` allowed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.auth.models import HouseholdBinding, ResidentAccount
from api.clock import now as clock_now
from api.clock import today
from api.config import Config
from api.db import Database, utcnow
from api.errors import Conflict, InvalidInput, NotFound, UpstreamError
from api.payments import pricing
from api.payments.channels import (
    AlreadyPaid,
    ChannelError,
    PrepayRequest,
    TradeState,
    get_channel,
    new_out_trade_no,
)
from api.payments.models import (
    OPEN_STATES,
    OrderItem,
    OrderStatus,
    PaymentOrder,
)
from api.payments.notify import in_transaction
from api.payments.settlement import apply_payment
from api.payments.states import record_new_order, transition_order

log = logging.getLogger(__name__)

NOTIFY_PATHS = {
    "wechat": "/api/v1/payments/notify/wechat",
    "alipay": "/api/v1/payments/notify/alipay",
}
INSURANCE_NAMES = {"medical": "城乡居民医疗保险费", "pension": "城乡居民养老保险费"}
BACKPAY_NAME = "补缴"
ALIPAY_SCENES = ("miniprogram", "wap", "qr")
# An open order answered again must leave the resident time to pay it.
REUSE_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class NewOrder:
    household_id: int
    year: int
    channel: str
    insurances: Sequence[str]
    scene: str | None = None


def household_visible(session: Session, *, account_id: int, household_id: int) -> bool:
    """A resident reaches only the households it is bound to (others are 404, not 403)."""
    return (
        session.scalar(
            select(HouseholdBinding.id).where(
                HouseholdBinding.account_id == account_id,
                HouseholdBinding.household_id == household_id,
            )
        )
        is not None
    )


def _choose_scene(account: ResidentAccount, channel: str, scene: str | None) -> str:
    if channel != account.channel:
        raise InvalidInput(
            "当前登录方式不能使用该支付渠道",
            code="channel_not_allowed",
            errors={"json": {"channel": [f"此账号只能使用 {account.channel}"]}},
        )
    if channel == "wechat":
        if scene not in (None, "miniprogram"):
            raise InvalidInput(errors={"json": {"scene": ["微信支付仅支持小程序"]}})
        return "miniprogram"
    chosen = scene or "miniprogram"
    if chosen not in ALIPAY_SCENES:
        raise InvalidInput(errors={"json": {"scene": ["可选 miniprogram、wap、qr"]}})
    return chosen


def create_order(
    db: Database,
    settings: Config,
    *,
    account: ResidentAccount,
    request: NewOrder,
    client_ip: str,
) -> PaymentOrder:
    """Make, commit and prepay an order for what the household owes (see module doc)."""
    session = db.session()
    if not household_visible(session, account_id=account.id, household_id=request.household_id):
        raise NotFound("未找到该家庭", code="household_not_found")
    scene = _choose_scene(account, request.channel, request.scene)
    insurances = sorted(set(request.insurances))
    on = today()
    if not pricing.collection_open(year=request.year, on=on):
        raise Conflict("当前不在缴费期内", code="collection_closed")

    # Nothing changes unless a new order can be made: a request for nothing owed is refused
    # before any open order of the household (perhaps a family member's) is touched.
    dues = pricing.dues(
        session, household_id=request.household_id, year=request.year, on=on, insurances=insurances
    )
    if not dues:
        raise Conflict("该家庭当前没有需要缴纳的保费", code="nothing_owed")
    same = _open_order_covering(
        session, account=account, request=request, scene=scene, insurances=insurances, dues=dues
    )
    if same is not None:
        session.commit()
        return same
    session.commit()

    closed, paid_meanwhile = close_open_orders(
        db, settings, household_id=request.household_id, actor=f"resident:{account.id}"
    )
    session = db.session()
    if closed:  # closing may have applied a payment: price again (else nothing changed here)
        dues = pricing.dues(
            session,
            household_id=request.household_id,
            year=request.year,
            on=on,
            insurances=insurances,
        )
    if not dues:
        if paid_meanwhile:
            raise Conflict("该家庭的保费已缴清", code="already_paid")
        raise Conflict("该家庭当前没有需要缴纳的保费", code="nothing_owed")

    now = clock_now()
    # Back-payments are late by nature (补缴, flagged for the tax record) but their amount
    # never changes with the date: only the year's premiums decide how long the price holds.
    late = any(d.late for d in dues if d.kind == "premium")
    expires_at = utcnow() + min(
        timedelta(minutes=settings.ORDER_TTL_MINUTES),
        pricing.price_valid_for(year=request.year, on=on, late=late, now=now),
        *(pricing.valid_until(d.valid_until, now=now) for d in dues if d.valid_until is not None),
    )
    order = PaymentOrder(
        out_trade_no=new_out_trade_no(now=now),
        channel=request.channel,
        scene=scene,
        household_id=request.household_id,
        account_id=account.id,
        year=request.year,
        insurances=",".join(insurances),
        amount_fen=sum(d.amount_fen for d in dues),
        description=_description(
            request.year,
            {d.insurance for d in dues if d.kind == "premium"},
            backpay=any(d.kind == "backpay" for d in dues),
        ),
        status=OrderStatus.CREATED,
        late=late,
        priced_on=on.isoformat(),
        expires_at=expires_at,
        payer_id=account.external_id,
        client_ip=client_ip[:64],
        refunded_fen=0,
        created_at=utcnow(),
        updated_at=utcnow(),
        items=[
            OrderItem(
                person_id=d.person_id,
                insurance=d.insurance,
                year=d.year,
                amount_fen=d.amount_fen,
                government_pays_fen=d.government_pays_fen,
                subsidy_fen=d.subsidy_fen,
                pension_tier=d.pension_tier,
                late=d.late,
                rule=d.rule[:64],
                kind=d.kind,
                backpay_id=d.backpay_id,
                benefit_start=d.benefit_start,
            )
            for d in dues
        ],
    )
    session.add(order)
    try:
        session.flush()
    except IntegrityError as exc:
        # Another family member's order got in between our close and this insert.
        session.rollback()
        raise Conflict("家庭已有一笔正在进行的订单，请稍后再试", code="order_in_progress") from exc
    record_new_order(session, order, actor=f"resident:{account.id}")
    session.commit()  # ← the order exists before the gateway hears of it

    channel = get_channel(settings, request.channel)
    try:
        prepaid = channel.prepay(
            PrepayRequest(
                out_trade_no=order.out_trade_no,
                amount_fen=order.amount_fen,
                description=order.description,
                payer_id=account.external_id,
                client_ip=client_ip or "127.0.0.1",
                expires_at=order.expires_at,
                notify_url=settings.PUBLIC_BASE_URL.rstrip("/") + NOTIFY_PATHS[order.channel],
                scene=scene,
            )
        )
    except ChannelError as exc:
        log.warning("prepay failed", extra={"out_trade_no": order.out_trade_no, "code": exc.code})
        session = db.session()
        transition_order(
            session,
            order,
            OrderStatus.FAILED,
            actor="system",
            reason="prepay_failed",
            values={"failure": str(exc)[:200], "closed_at": utcnow()},
        )
        session.commit()
        raise UpstreamError(code="upstream_error") from exc

    session = db.session()
    if not transition_order(
        session,
        order,
        OrderStatus.OPEN,
        actor="system",
        reason="prepaid",
        values={"channel_ref": prepaid.channel_ref, "pay_params": prepaid.pay_params},
    ):
        # Superseded while prepay was in flight (a family member's newer order closed it).
        session.rollback()
        raise Conflict("订单已被新的订单取代", code="order_superseded")
    session.commit()
    return order


def _open_order_covering(
    session: Session,
    *,
    account: ResidentAccount,
    request: NewOrder,
    scene: str,
    insurances: Sequence[str],
    dues: Sequence[pricing.Due],
) -> PaymentOrder | None:
    """The household's open order that asks for exactly this, if any: answered as is.

    Exactly means the same payer (a WeChat prepay is bound to the payer's openid, so another
    member's order cannot be paid from this phone), channel and scene, the same insurances and
    the same items at the same amounts, and still payable for a while. Replacing it would close
    a payable order at the channel only to open the same one again.
    """

    def key(x: pricing.Due | OrderItem) -> tuple[int, str, int, str, int, int]:
        return (x.person_id, x.insurance, x.year, x.kind, x.backpay_id or 0, x.amount_fen)

    wanted = sorted(key(d) for d in dues)
    candidates = session.scalars(
        select(PaymentOrder).where(
            PaymentOrder.household_id == request.household_id,
            PaymentOrder.status == OrderStatus.OPEN,
            PaymentOrder.year == request.year,
            PaymentOrder.account_id == account.id,
            PaymentOrder.channel == request.channel,
            PaymentOrder.scene == scene,
            PaymentOrder.insurances == ",".join(insurances),
            PaymentOrder.expires_at > utcnow() + REUSE_MARGIN,
        )
    ).all()
    for order in candidates:
        have = sorted(key(i) for i in order.items)
        if have == wanted and order.amount_fen == sum(d.amount_fen for d in dues):
            return order
    return None


def _description(year: int, insurances: set[str], *, backpay: bool = False) -> str:
    names = [INSURANCE_NAMES[i] for i in sorted(insurances)]
    if not names:  # back-payments alone
        return f"城乡居民社会保险费{BACKPAY_NAME}"
    return f"{year}年" + "、".join(names) + (f"及{BACKPAY_NAME}" if backpay else "")


def close_open_orders(
    db: Database, settings: Config, *, household_id: int, actor: str
) -> tuple[int, bool]:
    """Close the household's open orders at their channels; (how many there were, whether one
    turned out paid).

    Commits per order. A channel that cannot be reached leaves the order open and answers 502:
    a new order beside a possibly payable old one could be paid twice.
    """
    session = db.session()
    previous = session.scalars(
        select(PaymentOrder).where(
            PaymentOrder.household_id == household_id, PaymentOrder.status.in_(OPEN_STATES)
        )
    ).all()
    session.commit()
    paid = False
    for order in previous:
        outcome = close_at_channel(db, settings, order, reason="superseded", actor=actor)
        if outcome == "paid":
            paid = True
        elif outcome == "error":
            raise UpstreamError("上一笔订单暂时无法关闭，请稍后再试", code="upstream_error")
    return len(previous), paid


def close_at_channel(
    db: Database,
    settings: Config,
    order: PaymentOrder,
    *,
    reason: str,
    actor: str,
    target: str = OrderStatus.CLOSED,
) -> str:
    """Close one order at its channel, then here. Returns closed | paid | gone | error.

    "paid": the channel refused because it was paid; that payment has been applied through
    the settlement (same path as a notification). "gone": someone else moved it first.
    Commits.
    """
    channel = get_channel(settings, order.channel)
    try:
        channel.close(order.out_trade_no)
    except AlreadyPaid:
        return apply_from_query(db, settings, order.out_trade_no, order.channel, actor=actor)
    except ChannelError as exc:
        log.warning("close failed", extra={"out_trade_no": order.out_trade_no, "code": exc.code})
        return "error"

    def work(session: Session) -> str:
        fresh = session.scalars(
            select(PaymentOrder)
            .where(PaymentOrder.id == order.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        if fresh.status not in OPEN_STATES:
            return "gone"
        if not transition_order(
            session, fresh, target, actor=actor, reason=reason, values={"closed_at": utcnow()}
        ):
            return "gone"
        return "closed"

    return in_transaction(db, work)


def apply_from_query(
    db: Database, settings: Config, out_trade_no: str, channel_name: str, *, actor: str
) -> str:
    """Ask the channel about an order and apply a payment it reports, exactly as a
    notification would (`settlement.apply_payment`).

    Returns paid | open | closed | not_found | error. Commits.
    """
    channel = get_channel(settings, channel_name)
    try:
        trade = channel.query(out_trade_no)
    except ChannelError as exc:
        log.warning("query failed", extra={"out_trade_no": out_trade_no, "code": exc.code})
        return "error"
    if trade.state in (TradeState.PAID, TradeState.REFUNDED):
        applied = in_transaction(
            db,
            lambda session: apply_payment(session, trade=trade, channel=channel_name, actor=actor),
        )
        if applied.reason == "amount_mismatch":
            log.error("channel reports another amount", extra={"out_trade_no": out_trade_no})
            return "error"
        return "paid"
    return str(trade.state)


@dataclass(frozen=True)
class OpenItem:
    """An item of an open (payable) order: what a department change may have to close."""

    order_id: int
    out_trade_no: str
    person_id: int
    insurance: str


def open_items_of(session: Session, *, person_ids: Sequence[int], year: int) -> list[OpenItem]:
    """Items of `year` for these persons in orders that may still be paid."""
    rows = session.execute(
        select(PaymentOrder.id, PaymentOrder.out_trade_no, OrderItem.person_id, OrderItem.insurance)
        .join(OrderItem, OrderItem.order_id == PaymentOrder.id)
        .where(
            PaymentOrder.status.in_(OPEN_STATES),
            OrderItem.person_id.in_(list(person_ids)),
            OrderItem.year == year,
        )
        .order_by(PaymentOrder.id, OrderItem.id)
    ).all()
    return [OpenItem(*row) for row in rows]


def close_orders(
    db: Database, settings: Config, *, order_ids: Sequence[int], reason: str, actor: str
) -> dict[str, int]:
    """Close these orders at their channels, then here (`close_at_channel`, which commits per
    order); counts by outcome. A paid one is applied through the settlement; an unreachable
    channel leaves the order open (`error`), and the worker expires it later."""
    counts: dict[str, int] = {}
    for order_id in order_ids:
        order = db.session().get(PaymentOrder, order_id)
        db.session().commit()
        if order is None or order.status not in OPEN_STATES:
            outcome = "gone"
        else:
            outcome = close_at_channel(db, settings, order, reason=reason, actor=actor)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
