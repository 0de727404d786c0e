"""Payments models, one module per aggregate (STYLE.md 1):

- `orders`: `PaymentOrder` 缴费订单, `OrderItem` 订单明细, `OrderEvent` 状态变更记录
- `notifications`: `ChannelNotification` 回调日志 (the append-only callback log)
- `contributions`: `Contribution` 缴费记录 (unique per person × insurance × year while paid)
- `refunds`: `Refund` 退费, `RefundItem` 退费明细, `StrayRefund` 不明来款退回
- `idempotency`: `IdempotencyKey` 幂等键
"""

from api.payments.models.contributions import PAID_LITERAL, Contribution, ContributionStatus
from api.payments.models.idempotency import IdempotencyKey
from api.payments.models.notifications import ChannelNotification, NotificationOutcome
from api.payments.models.orders import (
    OPEN_STATES,
    OrderEvent,
    OrderItem,
    OrderStatus,
    PaymentOrder,
)
from api.payments.models.refunds import (
    Refund,
    RefundItem,
    RefundReason,
    RefundState,
    StrayRefund,
)

__all__ = [
    "OPEN_STATES",
    "PAID_LITERAL",
    "ChannelNotification",
    "Contribution",
    "ContributionStatus",
    "IdempotencyKey",
    "NotificationOutcome",
    "OrderEvent",
    "OrderItem",
    "OrderStatus",
    "PaymentOrder",
    "Refund",
    "RefundItem",
    "RefundReason",
    "RefundState",
    "StrayRefund",
]
