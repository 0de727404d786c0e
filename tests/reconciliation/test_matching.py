"""The matcher alone (no database): every outcome name from hand-made bill rows."""

from __future__ import annotations

from datetime import UTC, datetime

from api.payments.books import BillRow, OrderFacts, RefundFacts
from api.payments.channels.base import ChannelName
from api.reconciliation.matching import match
from api.reconciliation.models import OUTCOMES

AT = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


def _row(kind: str, no: str, fen: int, status: str, refund_no: str | None = None,
         fee: str = "0.00000") -> BillRow:  # fmt: skip
    return BillRow(ChannelName.WECHAT, kind, no, "tx-" + no, fen, fen,  # type: ignore[arg-type]
                   refund_no, None, AT, status, None, None, {"手续费": fee})  # fmt: skip


def _order(no: str, fen: int, status: str = "paid", channel: str = "wechat") -> OrderFacts:
    return OrderFacts(no, channel, status, fen, fen, AT, "tx-" + no)


def _refund(no: str, trade: str, fen: int, state: str = "succeeded") -> RefundFacts:
    return RefundFacts(no, trade, "wechat", state, fen, AT)


def test_every_outcome_and_the_totals() -> None:
    orders = {
        "A": _order("A", 100),
        "B": _order("B", 200, status="expired"),
        "C": _order("C", 300),
        "D": _order("D", 400),
        "E": _order("E", 500),
        "F": _order("F", 600),
        "Z": _order("Z", 700, channel="alipay"),
    }
    refunds = {"RA": _refund("RA", "A", 50), "RC": _refund("RC", "C", 30),
               "RX": _refund("RX", "E", 10, state="failed")}  # fmt: skip
    rows = [
        _row("payment", "A", 100, "SUCCESS", fee="0.01680"),  # matched
        _row("payment", "B", 200, "SUCCESS"),  # missing_ours
        _row("payment", "C", 301, "SUCCESS"),  # amount_mismatch
        _row("payment", "D", 400, "REVOKED"),  # status_mismatch
        _row("payment", "NOPE", 9, "SUCCESS"),  # unknown_trade
        _row("payment", "Z", 700, "SUCCESS"),  # another channel's order: unknown here
        _row("refund", "A", 50, "REFUND", "RA", fee="-0.00840"),  # matched
        _row("refund", "C", 31, "REFUND", "RC"),  # refund_amount_mismatch
        _row("refund", "F", 60, "REFUND", "RF"),  # refund_missing_ours
        _row("refund", "E", 10, "REFUND", "RX"),  # we say failed: status_mismatch
    ]
    our_paid = [orders["A"], orders["C"], orders["D"], _order("G", 800)]
    our_refunds = [refunds["RA"], _refund("RG", "G", 80)]
    result = match("wechat", rows, orders, refunds, our_paid, our_refunds)
    counts = result.counts()
    assert list(counts) == list(OUTCOMES)
    assert counts == {
        "matched": 2,
        "missing_ours": 1,
        "unknown_trade": 2,
        "missing_channel": 1,  # G
        "amount_mismatch": 1,
        "status_mismatch": 2,
        "refund_missing_ours": 1,
        "refund_missing_channel": 1,  # RG
        "refund_amount_mismatch": 1,
    }
    assert result.bill_total_fen == 100 + 200 + 301 + 400 + 9 + 700
    assert result.bill_refund_fen == 50 + 31 + 60 + 10
    assert result.bill_fee_fen == 1  # 1.68 fen - 0.84 fen = 0.84 fen, rounded once
    by_key = {(f.side, f.key): f.outcome for f in result.findings}
    assert by_key[("payment", "G")] == "missing_channel"
    assert by_key[("refund", "RG")] == "refund_missing_channel"
