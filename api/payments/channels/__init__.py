"""Payment channels (支付渠道): one small interface, three adapters, one factory.

See `base.py` for the contract, PROTOCOLS.md for the gateways, and /tmp/team/PAYMENTS.md for
how the core uses them.
"""

from api.payments.channels.base import (
    AlreadyPaid,
    BillRow,
    ChannelError,
    ChannelName,
    ChannelRefund,
    ChannelTrade,
    NotificationRejected,
    PaymentChannel,
    PrepayRequest,
    PrepayResult,
    Reply,
    TradeState,
    VerifiedNotification,
    new_out_refund_no,
    new_out_trade_no,
)
from api.payments.channels.factory import get_channel

__all__ = [
    "AlreadyPaid",
    "BillRow",
    "ChannelError",
    "ChannelName",
    "ChannelRefund",
    "ChannelTrade",
    "NotificationRejected",
    "PaymentChannel",
    "PrepayRequest",
    "PrepayResult",
    "Reply",
    "TradeState",
    "VerifiedNotification",
    "get_channel",
    "new_out_refund_no",
    "new_out_trade_no",
]
