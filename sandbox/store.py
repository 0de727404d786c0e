"""In-memory state of one sandbox server: orders, refunds, used login codes, faults, the
notification log and issued bill files. Guarded by one re-entrant lock because request
threads and notification threads touch it at the same time.

Nothing is persisted: restarting the sandbox (or `POST /sandbox/control/reset`) forgets
everything, the way a fresh vendor test account would look.

Money is integer fen throughout (Alipay's yuan strings are converted at its edge only).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sandbox.faults import Fault

Channel = Literal["wechat", "alipay"]
CHANNELS: tuple[Channel, ...] = ("wechat", "alipay")

MAX_LOG = 20_000

OPEN = "OPEN"  # created, not paid (WeChat NOTPAY, Alipay WAIT_BUYER_PAY)
PAID = "PAID"
CLOSED = "CLOSED"  # closed unpaid


@dataclass
class Refund:
    """One refund of an order (退款), keyed by the merchant's out_refund_no."""

    out_refund_no: str
    refund_id: str
    amount_fen: int
    created_at: datetime
    notify_url: str | None = None
    reason: str = ""
    api: str = "v2"
    status: str = "PROCESSING"  # PROCESSING → SUCCESS
    succeeded_at: datetime | None = None


@dataclass
class Order:
    """One order as the gateway sees it (订单). `api` is v2, v3 or alipay."""

    channel: Channel
    api: str
    out_trade_no: str
    amount_fen: int
    description: str
    app_id: str
    merchant_id: str
    created_at: datetime
    notify_url: str | None = None
    payer_id: str | None = None
    attach: str | None = None
    trade_type: str = "JSAPI"
    fingerprint: tuple[Any, ...] = ()
    state: str = OPEN
    transaction_id: str | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    expires_at: datetime | None = None
    prepay_id: str | None = None
    sign_type: str = "MD5"  # v2: the algorithm of unifiedorder, reused for its notifications
    sign_key: str = ""  # v2: the API key (or the sandboxnew sign key) the order was made with
    scanned: bool = True  # Alipay precreate: the trade exists only once scanned (§5.6)
    extra: dict[str, Any] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)

    @property
    def refunded_fen(self) -> int:
        """Refunds accepted so far (processing or done) — what is no longer refundable."""
        return sum(r.amount_fen for r in self.refunds.values())

    @property
    def refund_success_fen(self) -> int:
        return sum(r.amount_fen for r in self.refunds.values() if r.status == "SUCCESS")

    @property
    def wechat_trade_state(self) -> str:
        """§1.6 trade_state: NOTPAY, SUCCESS, REFUND (a refund exists), CLOSED."""
        if self.state == PAID:
            return "REFUND" if self.refunds else "SUCCESS"
        return "CLOSED" if self.state == CLOSED else "NOTPAY"

    @property
    def alipay_trade_status(self) -> str:
        """§5.5: WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_CLOSED (closed unpaid or fully refunded)."""
        if self.state == PAID:
            full = self.refund_success_fen >= self.amount_fen
            return "TRADE_CLOSED" if full else "TRADE_SUCCESS"
        return "TRADE_CLOSED" if self.state == CLOSED else "WAIT_BUYER_PAY"

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "api": self.api,
            "out_trade_no": self.out_trade_no,
            "amount_fen": self.amount_fen,
            "description": self.description,
            "app_id": self.app_id,
            "merchant_id": self.merchant_id,
            "payer_id": self.payer_id,
            "notify_url": self.notify_url,
            "trade_type": self.trade_type,
            "state": self.state,
            "vendor_state": self.wechat_trade_state
            if self.channel == "wechat"
            else self.alipay_trade_status,
            "transaction_id": self.transaction_id,
            "created_at": self.created_at.isoformat(),
            "paid_at": self.paid_at.isoformat() if self.paid_at else None,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "refunds": [
                {
                    "out_refund_no": r.out_refund_no,
                    "refund_id": r.refund_id,
                    "amount_fen": r.amount_fen,
                    "status": r.status,
                    "created_at": r.created_at.isoformat(),
                    "succeeded_at": r.succeeded_at.isoformat() if r.succeeded_at else None,
                }
                for r in self.refunds.values()
            ],
        }


@dataclass
class BillFile:
    """A bill behind a download URL; `expires` is a time.monotonic() deadline or None."""

    content: bytes
    content_type: str
    filename: str
    expires: float | None


class Store:
    """All mutable state, behind `self.lock`. Callers hold the lock across read-modify-write."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.orders: dict[tuple[str, str], Order] = {}
        self.used_codes: set[tuple[str, str]] = set()
        self.global_faults: list[Fault] = []
        self.order_faults: dict[str, list[Fault]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.bill_files: dict[str, BillFile] = {}
        self._sequence = 0

    @contextmanager
    def locked(self) -> Iterator[Store]:
        with self.lock:
            yield self

    def reset(self) -> None:
        with self.lock:
            self.orders.clear()
            self.used_codes.clear()
            self.global_faults.clear()
            self.order_faults.clear()
            self.notifications.clear()
            self.bill_files.clear()

    # Orders ---------------------------------------------------------------------------------

    def get(self, channel: str, out_trade_no: str) -> Order | None:
        with self.lock:
            return self.orders.get((channel, out_trade_no))

    def put(self, order: Order) -> None:
        with self.lock:
            self.orders[(order.channel, order.out_trade_no)] = order

    def find_by_transaction(self, channel: str, transaction_id: str) -> Order | None:
        with self.lock:
            for (ch, _), order in self.orders.items():
                if ch == channel and order.transaction_id == transaction_id:
                    return order
            return None

    def find_refund(self, channel: str, out_refund_no: str) -> tuple[Order, Refund] | None:
        with self.lock:
            for (ch, _), order in self.orders.items():
                if ch == channel and out_refund_no in order.refunds:
                    return order, order.refunds[out_refund_no]
            return None

    def orders_of(self, channel: str) -> list[Order]:
        with self.lock:
            return [o for (ch, _), o in self.orders.items() if ch == channel]

    # Login codes ----------------------------------------------------------------------------

    def use_code(self, namespace: str, code: str) -> bool:
        """Mark a login/auth code used; False when it was used before (single use, §3)."""
        with self.lock:
            key = (namespace, code)
            if key in self.used_codes:
                return False
            self.used_codes.add(key)
            return True

    # Faults ---------------------------------------------------------------------------------

    def set_faults(self, faults: list[Fault], out_trade_no: str | None = None) -> None:
        with self.lock:
            if out_trade_no:
                self.order_faults[out_trade_no] = list(faults)
            else:
                self.global_faults = list(faults)

    def faults_for(self, out_trade_no: str | None) -> tuple[list[Fault], list[Fault]]:
        """(global, per-order) faults in force."""
        with self.lock:
            own = self.order_faults.get(out_trade_no or "", []) if out_trade_no else []
            return list(self.global_faults), list(own)

    def faults_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "global": [str(f) for f in self.global_faults],
                "orders": {k: [str(f) for f in v] for k, v in self.order_faults.items()},
            }

    # Notification log -----------------------------------------------------------------------

    def log_notification(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append one attempt; the oldest entries go once MAX_LOG is reached (a long-running
        developer sandbox must not grow without bound)."""
        with self.lock:
            self._sequence += 1
            entry = {"seq": self._sequence, **entry}
            self.notifications.append(entry)
            if len(self.notifications) > MAX_LOG:
                del self.notifications[: len(self.notifications) - MAX_LOG]
            return entry

    def notification_log(
        self, channel: str | None = None, out_trade_no: str | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(e)
                for e in self.notifications
                if (channel is None or e.get("channel") == channel)
                and (out_trade_no is None or e.get("out_trade_no") == out_trade_no)
            ]
