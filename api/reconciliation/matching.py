"""Matching one bill against our books: every row and every record gets one outcome.

Pure: the bill rows and our facts come in, `Finding`s come out, nothing is read or written.
Keys are out_trade_no for payments and out_refund_no for refunds (PROTOCOLS.md §6.2); the
amount compared is 订单金额 against the order's amount_fen (what the resident owed, §6.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from api.payments.books import BillRow, OrderFacts, RefundFacts
from api.reconciliation.models import OUTCOMES, Outcome

# A payment row that says the money was taken (WeChat 交易状态, Alipay 业务类型).
PAID_ROW_STATUSES = frozenset({"SUCCESS", "交易"})
# Our refund states the channel has accepted; a billed refund in another state is a mismatch.
SENT_REFUND_STATES = frozenset({"processing", "succeeded"})


@dataclass(frozen=True)
class Finding:
    """One outcome: a bill row, one of our records, or both."""

    outcome: Outcome
    side: str  # payment | refund
    key: str
    out_trade_no: str
    out_refund_no: str | None = None
    bill_amount_fen: int | None = None
    our_amount_fen: int | None = None
    bill_status: str | None = None
    our_status: str | None = None
    transaction_id: str | None = None


@dataclass
class Matched:
    """The findings of one bill, plus the bill's own totals."""

    findings: list[Finding] = field(default_factory=list)
    bill_total_fen: int = 0
    bill_refund_fen: int = 0
    bill_fee_fen: int = 0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for finding in self.findings:
            counts[finding.outcome] += 1
        return counts


def _fee_fen(rows: Iterable[BillRow]) -> int:
    """Net fees in fen: WeChat 手续费 (5 decimals, refunds negative), Alipay 服务费 (charged
    as a negative figure). Summed in Decimal, rounded half-up once."""
    total = Decimal(0)
    for row in rows:
        raw = row.raw.get("手续费")
        sign = 1
        if raw is None:
            raw, sign = row.raw.get("服务费（元）"), -1
        if not raw or not raw.strip():
            continue
        try:
            total += sign * Decimal(raw.strip())
        except InvalidOperation:
            continue
    return int((total * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def match(
    channel: str,
    rows: list[BillRow],
    orders: Mapping[str, OrderFacts],
    refunds: Mapping[str, RefundFacts],
    our_paid: Iterable[OrderFacts],
    our_refunds: Iterable[RefundFacts],
) -> Matched:
    """Classify every bill row and every record of ours for the day.

    `orders` / `refunds` hold our records for the keys the bill names (any day); `our_paid` /
    `our_refunds` are ours for the bill's day (channel time), to find what the bill lacks
    (`our_paid` may leave out orders the bill has a payment row for: `runs` reads only the
    others' facts).
    """
    result = Matched(bill_fee_fen=_fee_fen(rows))
    billed_trades: set[str] = set()
    billed_refunds: set[str] = set()
    for row in rows:
        if row.kind == "payment":
            billed_trades.add(row.out_trade_no)
            result.bill_total_fen += row.amount_fen
            result.findings.append(_payment(channel, row, orders.get(row.out_trade_no)))
        else:
            key = _refund_key(row)
            billed_refunds.add(key)
            result.bill_refund_fen += row.amount_fen
            owner = orders.get(row.out_trade_no)
            result.findings.append(_refund(channel, row, refunds.get(key), owner))
    for order in our_paid:
        if order.out_trade_no not in billed_trades:
            result.findings.append(
                Finding(
                    Outcome.MISSING_CHANNEL,
                    "payment",
                    order.out_trade_no,
                    order.out_trade_no,
                    our_amount_fen=order.amount_fen,
                    our_status=order.status,
                    transaction_id=order.transaction_id,
                )
            )
    for refund in our_refunds:
        if refund.out_refund_no not in billed_refunds:
            result.findings.append(
                Finding(
                    Outcome.REFUND_MISSING_CHANNEL,
                    "refund",
                    refund.out_refund_no,
                    refund.out_trade_no,
                    out_refund_no=refund.out_refund_no,
                    our_amount_fen=refund.amount_fen,
                    our_status=refund.state,
                )
            )
    return result


def _payment(channel: str, row: BillRow, order: OrderFacts | None) -> Finding:
    def found(outcome: Outcome) -> Finding:
        return Finding(
            outcome,
            "payment",
            row.out_trade_no,
            row.out_trade_no,
            bill_amount_fen=row.amount_fen,
            our_amount_fen=order.amount_fen if order else None,
            bill_status=row.status,
            our_status=order.status if order else None,
            transaction_id=row.transaction_id,
        )

    if order is None or order.channel != channel:
        return found(Outcome.UNKNOWN_TRADE)
    if row.status not in PAID_ROW_STATUSES:
        return found(Outcome.STATUS_MISMATCH if order.paid else Outcome.MATCHED)
    if not order.paid:
        return found(Outcome.MISSING_OURS)
    if row.amount_fen != order.amount_fen:
        return found(Outcome.AMOUNT_MISMATCH)
    return found(Outcome.MATCHED)


def _refund_key(row: BillRow) -> str:
    """A refund row's key: its out_refund_no (a row without one keys on its trade)."""
    return row.out_refund_no or f"{row.out_trade_no[:56]}#refund"


def _refund(
    channel: str, row: BillRow, refund: RefundFacts | None, owner: OrderFacts | None
) -> Finding:
    def found(outcome: Outcome) -> Finding:
        return Finding(
            outcome,
            "refund",
            _refund_key(row),
            row.out_trade_no,
            out_refund_no=row.out_refund_no,
            bill_amount_fen=row.amount_fen,
            our_amount_fen=refund.amount_fen if refund else None,
            bill_status=row.status,
            our_status=refund.state if refund else None,
            transaction_id=row.transaction_id,
        )

    if refund is None:
        if owner is None or owner.channel != channel:
            return found(Outcome.UNKNOWN_TRADE)
        return found(Outcome.REFUND_MISSING_OURS)
    if refund.out_trade_no != row.out_trade_no:
        return found(Outcome.STATUS_MISMATCH)
    if refund.state not in SENT_REFUND_STATES:
        return found(Outcome.STATUS_MISMATCH)
    if refund.amount_fen != row.amount_fen:
        return found(Outcome.REFUND_AMOUNT_MISMATCH)
    return found(Outcome.MATCHED)
