"""The payment-channel interface (支付渠道接口): the contract between the adapters and the core.

Each channel (WeChat Pay API v2, WeChat Pay API v3, Alipay) is one small class implementing
`PaymentChannel`. Adapters take a settings object and return the plain dataclasses below: no
database, no Flask, no state beyond lazily built SDK clients. The core never branches on the
channel's protocol version (`get_channel` picks the WeChat adapter from WECHAT_PAY_VERSION).

Additions beyond the interface in /tmp/team/PAYMENTS.md:
- `VerifiedNotification.kind` also takes "pending": a genuine, verified notification that carries
  no final outcome (Alipay `WAIT_BUYER_PAY`, a WeChat v2 notification with result_code FAIL, a
  v3 event type we do not act on). Acknowledge it with `success_reply()`, change nothing.
- `ChannelRefund.total_refunded_fen`: the trade's cumulative refunded amount when the channel
  says it (Alipay's `refund_fee`); None for WeChat, whose amounts are per refund.
- `ChannelError.code` (the gateway's error code, e.g. "ORDERPAID", "ACQ.TRADE_NOT_EXIST",
  "http_503", "network") and `NotificationRejected.detail` (free text for the log).
- `BillRow` (the reconciliation row), `new_out_trade_no` / `new_out_refund_no`.
- `query_refund`: what the channel says about one refund now (WeChat v2 `pay/refundquery`,
  v3 `GET /v3/refund/domestic/refunds/{out_refund_no}`, Alipay
  `alipay.trade.fastpay.refund.query`), as the same `ChannelRefund` a refund notification
  yields, so the refund healer books it through the notification's own path; None when the
  channel knows no such refund.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Literal, Protocol

from api.clock import BEIJING


class ChannelName(StrEnum):
    WECHAT = "wechat"
    ALIPAY = "alipay"


@dataclass(frozen=True)
class PrepayRequest:
    """What the core asks the channel for when a resident starts paying (下单)."""

    out_trade_no: str
    amount_fen: int
    description: str  # e.g. "2020年城乡居民医疗保险费"
    payer_id: str | None  # WeChat openid / Alipay buyer user_id (from the resident account)
    client_ip: str
    expires_at: datetime  # UTC aware; sent to the channel as time_expire
    notify_url: str
    scene: str = "miniprogram"  # alipay: "miniprogram" (trade.create) | "wap" | "qr" (precreate)


@dataclass(frozen=True)
class PrepayResult:
    # WeChat: exactly timeStamp, nonceStr, package, signType, paySign (for wx.requestPayment).
    # Alipay: {"trade_no"} (miniprogram) / {"pay_url"} (wap) / {"qr_code"} (qr).
    pay_params: dict[str, str]
    channel_ref: str | None  # prepay_id / Alipay trade_no


class TradeState(StrEnum):
    """What the channel says about one order, reduced to what the core acts on.

    REFUNDED means "was paid, then (partly or fully) refunded": the payment itself happened.
    """

    PAID = "paid"
    OPEN = "open"
    CLOSED = "closed"
    REFUNDED = "refunded"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class ChannelTrade:
    """One order as the channel reports it (query answer or notification)."""

    out_trade_no: str
    state: TradeState
    amount_fen: int | None
    transaction_id: str | None
    paid_at: datetime | None  # UTC aware
    app_id: str | None
    merchant_id: str | None  # WeChat mch_id / Alipay seller_id
    payer_id: str | None

    @classmethod
    def not_found(cls, out_trade_no: str) -> ChannelTrade:
        """The answer for an order the channel has never seen."""
        return cls(out_trade_no, TradeState.NOT_FOUND, None, None, None, None, None, None)


@dataclass(frozen=True)
class ChannelRefund:
    """One refund (退款) as the channel reports it."""

    out_trade_no: str
    out_refund_no: str
    refund_id: str | None
    amount_fen: int  # this refund's amount
    state: Literal["succeeded", "processing", "closed", "failed"]
    succeeded_at: datetime | None  # UTC aware
    total_refunded_fen: int | None = None  # cumulative for the trade, when the channel says


NotificationKind = Literal["payment", "refund", "closed", "pending"]


@dataclass(frozen=True)
class VerifiedNotification:
    """Only produced after signature, app id and merchant id checks passed."""

    kind: NotificationKind
    trade: ChannelTrade | None
    refund: ChannelRefund | None
    event_id: str | None  # v3 notification id / Alipay notify_id, for the log


class NotificationRejected(Exception):
    """A notification we must not act on; `reason` is a stable code for the callback log.

    Reasons used: bad_signature, wrong_app_id, wrong_merchant, malformed, stale_timestamp,
    unknown_serial, decrypt_failed, not_success, upstream_unavailable.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Reply:
    """The exact protocol reply to send back to the gateway."""

    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class BillRow:
    """One row of a channel's daily trade bill (对账单), amounts converted to fen.

    `amount_fen` is the order amount (订单金额, what the resident owed) for payments and the
    requested refund amount (申请退款金额 / Alipay's negative 订单金额, made positive) for
    refunds; `settled_fen` is the settled amount (应结订单金额 / 商家实收) when the bill has it
    (PROTOCOLS.md §6.2). `raw` keeps the row's cells by header name for finance.
    """

    channel: ChannelName
    kind: Literal["payment", "refund"]
    out_trade_no: str
    transaction_id: str | None
    amount_fen: int
    settled_fen: int | None
    out_refund_no: str | None
    refund_id: str | None
    occurred_at: datetime | None  # UTC aware: payment time, or refund time for refund rows
    status: str  # WeChat 交易状态 (SUCCESS/REFUND/...) / Alipay 业务类型 (交易/退款)
    app_id: str | None
    merchant_id: str | None
    raw: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)


class ChannelError(Exception):
    """The gateway is down, timed out, answered 5xx, or refused the request (业务失败).

    `retryable` tells the core whether the same call may succeed later (network, 5xx,
    SYSTEMERROR) or will not (bad parameters, bad response signature, wrong merchant).
    """

    def __init__(self, message: str, *, code: str = "error", retryable: bool = False) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(f"{code}: {message}")


class AlreadyPaid(ChannelError):
    """Close refused because the channel says the order is paid (WeChat ORDERPAID)."""

    def __init__(self, message: str = "order already paid", *, code: str = "ORDERPAID") -> None:
        super().__init__(message, code=code, retryable=False)


class PaymentChannel(Protocol):
    name: ChannelName

    def prepay(self, req: PrepayRequest) -> PrepayResult: ...

    def query(self, out_trade_no: str) -> ChannelTrade: ...

    def close(self, out_trade_no: str) -> None: ...

    def refund(
        self,
        *,
        out_trade_no: str,
        out_refund_no: str,
        total_fen: int,
        refund_fen: int,
        reason: str,
        notify_url: str,
    ) -> ChannelRefund: ...

    def query_refund(self, *, out_trade_no: str, out_refund_no: str) -> ChannelRefund | None:
        """The refund as the channel reports it now: state "processing" while it is still
        under way, "succeeded" / "closed" / "failed" once final; None when the channel has no
        refund `out_refund_no` of `out_trade_no`. Raises ChannelError when it cannot tell."""
        ...

    def parse_notification(
        self,
        headers: Mapping[str, str],
        body: bytes,
        path: str,
        *,
        received_at: datetime | None = None,
    ) -> VerifiedNotification:
        """Verify and read one notification. `received_at` (default: now) is when it reached
        us: a stored one read again later (`notify.sweep_unfinished`) is judged as of then."""
        ...

    def success_reply(self) -> Reply: ...

    def failure_reply(self, reason: str) -> Reply: ...

    def download_bill(self, bill_date: date) -> list[BillRow]: ...

    def fetch_bill(self, bill_date: date) -> bytes | None:
        """The day's trade bill file exactly as the channel sent it (WeChat text, Alipay
        csv.zip), for reconciliation to keep; None when the channel has no bill for the day."""
        ...


# Out-trade numbers --------------------------------------------------------------------------

_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def settle_refused_close(channel: PaymentChannel, out_trade_no: str, error: ChannelError) -> None:
    """A close the gateway refused with a code we do not know for sure is settled by a query.

    Closing exists to prevent a double payment (PROTOCOLS.md §1.6, §5.6), so an unclear refusal
    must not be taken as "closed": a transient error is raised for a retry, a paid trade raises
    `AlreadyPaid` (the caller applies the payment), a closed or unknown trade counts as closed.
    """
    if error.retryable:
        raise error
    trade = channel.query(out_trade_no)
    if trade.state in (TradeState.PAID, TradeState.REFUNDED):
        raise AlreadyPaid(f"{out_trade_no} is paid", code=error.code) from error
    if trade.state in (TradeState.CLOSED, TradeState.NOT_FOUND):
        return
    raise error


def _new_number(prefix: str, now: datetime | None) -> str:
    if not (prefix.isascii() and prefix.isalnum() and 1 <= len(prefix) <= 8):
        raise ValueError("prefix must be 1-8 ASCII letters or digits")
    day = (now or datetime.now(BEIJING)).astimezone(BEIJING).strftime("%Y%m%d")
    tail = "".join(secrets.choice(_BASE32) for _ in range(16))  # 80 random bits
    return f"{prefix}{day}{tail}"


def new_out_trade_no(prefix: str = "SSI", *, now: datetime | None = None) -> str:
    """A merchant order number valid for both channels: ≤ 32 chars of [0-9A-Za-z].

    WeChat allows 6-32 chars of digits, letters and `_-|*` (PROTOCOLS.md §1.3, §2.1), Alipay
    64; `SSI` + Beijing yyyymmdd + 16 base32 characters from `secrets` is 27 characters, sorts by
    day for finance, and carries 80 random bits, so numbers can be neither guessed nor collide.
    """
    return _new_number(prefix, now)


def new_out_refund_no(prefix: str = "SSR", *, now: datetime | None = None) -> str:
    """A merchant refund number (WeChat out_refund_no / Alipay out_request_no), same rules."""
    return _new_number(prefix, now)
