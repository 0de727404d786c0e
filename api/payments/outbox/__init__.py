"""Outbox 税务对账队列: confirmation records for the tax side, written in the payment's own
transaction and relayed to RabbitMQ (or the embedded database queue) at least once.

The contract with payments-core (/tmp/team/PAYMENTS.md, "Outbox interface"):
`ContributionEvent`, `enqueue_contribution_event(session, event)` and
`delivery_status(session, contribution_ids)`. docs/tax-queue.md describes the whole flow.
"""

from api.payments.outbox.models import OutboxMessage, TaxAcknowledgement
from api.payments.outbox.record import ContributionEvent, RecordInvalid
from api.payments.outbox.service import (
    DeliveryStatus,
    RecordDelivery,
    delivery_status,
    enqueue_contribution_event,
)

__all__ = [
    "ContributionEvent",
    "DeliveryStatus",
    "OutboxMessage",
    "RecordDelivery",
    "RecordInvalid",
    "TaxAcknowledgement",
    "delivery_status",
    "enqueue_contribution_event",
]
