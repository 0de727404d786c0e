"""Faults on purpose (故障注入), named like `stripe trigger` events.

A fault is a string `name` or `name:argument`. Set them globally or per out_trade_no through
`POST /sandbox/control/faults`, the `faults` of `POST /sandbox/control/pay`, or the CLI.

Notification faults (what the gateway does with its notification; PROTOCOLS.md §4: at least
once, possibly concurrently, possibly never):
- `duplicate`        the same notification twice, the second once the first got its reply
- `copies:N`         N identical notifications at the same instant (concurrent, §1.5)
- `delay:SECONDS`    first attempt only after SECONDS real seconds (not time-scaled)
- `out_of_order`     the payment notice waits until a refund of the order has been notified
- `drop`             no notification at all; only query and bill tell the truth
- `drop_refund`      no refund notification (payment notifications still go out): the
                     refund's result is only in the refund query and the bill
- `forge_signature`  signed with the wrong key (v2 refunds: req_info under the wrong key)
- `amount_changed`   amount one fen higher, correctly signed
- `wrong_appid`      another appid / app_id, correctly signed
- `wrong_mch`        another mch_id / mchid / seller_id, correctly signed
- `probe`            one extra callback with a bad signature before the real one (the v3
                     "signature probe", §2.3; offered for every channel)
API faults (what the gateway does to the merchant's calls for that order):
- `prepay_5xx`       order creation answers HTTP 500 and creates nothing
- `query_5xx`        order query answers HTTP 500
- `timeout[:SECONDS]` order creation and query are processed, then the reply hangs
                     SECONDS (default SANDBOX_HANG_SECONDS) so the client times out
- `refund_pending`   a refund is accepted but stays PROCESSING until
                     `POST /sandbox/control/refund-notify` settles it (WeChat: no automatic
                     settlement; Alipay: `fund_change` N and a refund query without
                     `refund_status`, instead of a synchronous success)
- `overcharge`      the channel takes 100 fen more than the order's amount when it is paid:
                     the trade, its query, its refunds and the bill carry the higher amount,
                     the payment notification the order's own (so the merchant books it and
                     only the bill shows the excess: `amount_mismatch`, the channel's higher)
Bill faults (what the day's trade bill gets wrong; the trades themselves are untouched):
- `bill_omit`        the order's payment row is left out of the bill
- `bill_amount`      the order's payment row shows 订单金额 one yuan (100 fen) higher
- `bill_omit_refund` the order's refund rows are left out of the bill
- `bill_refund_amount` the order's refund rows show 退款金额 one yuan (100 fen) higher
- `bill_extra_refund` the bill adds, beside the order's payment row, a one-yuan refund under an
                     out_refund_no the merchant never sent (a refund made outside our system)
- `bill_revoked`     (WeChat) the order's payment row shows 交易状态 REVOKED (撤销) instead of
                     SUCCESS; Alipay bills carry no payment status, so it changes nothing there
- `bill_not_ready`   (global) every bill is answered "no bill" as before 09:00 on D+1
A trade the API never heard of: `POST /sandbox/control/unknown-trade` (a paid trade that
only the bill and the query show).
Faults stay until cleared (`{"clear": true}`) or `reset`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

NOTIFICATION_FAULTS = frozenset(
    {
        "duplicate",
        "copies",
        "delay",
        "out_of_order",
        "drop",
        "drop_refund",
        "forge_signature",
        "amount_changed",
        "wrong_appid",
        "wrong_mch",
        "probe",
    }
)
API_FAULTS = frozenset({"prepay_5xx", "query_5xx", "timeout", "refund_pending", "overcharge"})
BILL_FAULTS = frozenset(
    {
        "bill_omit",
        "bill_amount",
        "bill_omit_refund",
        "bill_refund_amount",
        "bill_extra_refund",
        "bill_revoked",
        "bill_not_ready",
    }
)
ALL_FAULTS = NOTIFICATION_FAULTS | API_FAULTS | BILL_FAULTS
_NEEDS_ARGUMENT = frozenset({"copies", "delay"})
_OPTIONAL_ARGUMENT = frozenset({"timeout"})


class FaultError(ValueError):
    """A fault string that names no fault or carries a bad argument."""


@dataclass(frozen=True)
class Fault:
    """One parsed fault; `argument` is a number for copies/delay/timeout."""

    name: str
    argument: float | None = None

    def __str__(self) -> str:
        if self.argument is None:
            return self.name
        value = int(self.argument) if self.argument == int(self.argument) else self.argument
        return f"{self.name}:{value}"


def parse_fault(text: str) -> Fault:
    """`"copies:3"` → Fault("copies", 3.0); unknown names and bad numbers raise FaultError."""
    name, _, raw = text.strip().partition(":")
    if name not in ALL_FAULTS:
        raise FaultError(f"unknown fault {name!r}; known: {', '.join(sorted(ALL_FAULTS))}")
    if not raw:
        if name in _NEEDS_ARGUMENT:
            raise FaultError(f"fault {name!r} needs an argument, e.g. {name}:2")
        return Fault(name)
    if name not in _NEEDS_ARGUMENT | _OPTIONAL_ARGUMENT:
        raise FaultError(f"fault {name!r} takes no argument")
    try:
        value = float(raw)
    except ValueError as exc:
        raise FaultError(f"fault {name!r}: {raw!r} is not a number") from exc
    if value < 0 or (name == "copies" and (value < 1 or value != int(value) or value > 50)):
        raise FaultError(f"fault {name!r}: bad argument {raw!r}")
    return Fault(name, value)


def parse_faults(texts: Iterable[str]) -> list[Fault]:
    return [parse_fault(text) for text in texts]


@dataclass(frozen=True)
class FaultSet:
    """The faults in force for one order: global ones plus the order's own plus the call's."""

    faults: tuple[Fault, ...] = ()

    @classmethod
    def of(cls, *groups: Iterable[Fault]) -> FaultSet:
        merged: dict[str, Fault] = {}
        for group in groups:
            for fault in group:
                merged[fault.name] = fault  # later groups (more specific) win
        return cls(tuple(merged.values()))

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.faults)

    def argument(self, name: str, default: float | None = None) -> float | None:
        for fault in self.faults:
            if fault.name == name:
                return fault.argument if fault.argument is not None else default
        return default

    def names(self) -> list[str]:
        return [str(f) for f in self.faults]
