"""Agent cash 代办员收款: the payments side of a village agent's receipt (`api.collection`).

Payments owns contributions, so the collection package books and voids agent cash only
through these functions:
- `collectable_dues`: what the household owes now for the year — `pricing.dues`, the very
  function an online order is priced with, so an agent's amount always equals the premiums
  page and an online order for the same persons (DOMAIN.md 超标准/搭车收费: the agent never
  enters an amount).
- `book_agent_cash`: one `Contribution` per due with `source = agent`, in the caller's
  transaction. **No tax record is enqueued** (DOMAIN.md "The process", step 5): an
  agent-collected premium is *collected* at the receipt and *booked* when the tax office
  confirms the town's declaration; that confirming transaction will write the outbox records
  (not built yet, docs/collection.md). The partial unique index on paid contributions makes a
  premium paid online at the same moment lose here or there, never both: the INSERT runs in a
  savepoint and a violation is `AlreadyPaid`, the caller's transaction still usable.
- `void_agent_cash`: reverse an agent's contributions (a voided receipt). Conditional on
  `status = paid` and `source = agent`; no reversal record either, as no paid record was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import utcnow
from api.errors import Conflict
from api.payments import pricing
from api.payments.ledger import paid_on
from api.payments.models import Contribution, ContributionStatus
from api.payments.pricing import Due

SOURCE = "agent"
VOID_REASON = "receipt_voided"
__all__ = ["SOURCE", "AlreadyPaid", "Due", "book_agent_cash", "collectable_dues", "void_agent_cash"]


class AlreadyPaid(Conflict):
    """A premium of the collection was paid meanwhile (online, another receipt, a batch)."""

    code = "already_paid"
    message = "所选人员的保费已经缴纳（可能刚通过线上或其他收据缴费），请刷新后重试"


def collection_open(*, year: int, on: date) -> bool:
    """Whether premiums of `year` may be collected on `on` (the same phases as online)."""
    return pricing.collection_open(year=year, on=on)


def collectable_dues(session: Session, *, household_id: int, year: int, on: date) -> list[Due]:
    """The household's unpaid premiums of `year` (medical and pension) priced on `on`.

    A newborn's birth-year item (another year) and back-payments 补缴 are left out: those are
    settled at the counter or online, not on a village receipt."""
    dues = pricing.dues(
        session, household_id=household_id, year=year, on=on, insurances=("medical", "pension")
    )
    return [d for d in dues if d.year == year and d.kind == "premium"]


def book_agent_cash(
    session: Session, *, household_id: int, dues: Sequence[Due], paid_at: datetime
) -> list[int]:
    """Insert the agent's contributions (flush, in a savepoint); their ids in `dues`' order.

    Raises `AlreadyPaid` when any of them is paid meanwhile (the savepoint is rolled back)."""
    if not dues:
        return []
    day = paid_on(paid_at)
    now = utcnow()
    rows = [
        {
            "person_id": d.person_id,
            "household_id": household_id,
            "insurance": d.insurance,
            "year": d.year,
            "amount_fen": d.amount_fen,
            "government_pays_fen": d.government_pays_fen,
            "subsidy_fen": d.subsidy_fen,
            "pension_tier": d.pension_tier,
            "source": SOURCE,
            "order_id": None,
            "order_item_id": None,
            "out_trade_no": None,
            "channel_transaction_id": None,
            "paid_at": paid_at,
            "late": d.late,
            "benefit_start": d.benefit_start
            or pricing.benefit_start(year=d.year, insurance=d.insurance, paid_on=day),
            "status": ContributionStatus.PAID.value,
            "kind": d.kind,
            "created_at": now,
        }
        for d in dues
    ]
    try:
        with session.begin_nested():
            return list(
                session.scalars(
                    insert(Contribution).returning(Contribution.id, sort_by_parameter_order=True),
                    rows,
                )
            )
    except IntegrityError as exc:
        raise AlreadyPaid() from exc


def void_agent_cash(session: Session, contribution_ids: Sequence[int]) -> list[int]:
    """Reverse the agent's paid contributions among `contribution_ids`; the ids reversed."""
    if not contribution_ids:
        return []
    return list(
        session.scalars(
            update(Contribution)
            .where(
                Contribution.id.in_(list(contribution_ids)),
                Contribution.source == SOURCE,
                Contribution.status == ContributionStatus.PAID,
            )
            .values(
                status=ContributionStatus.REVERSED,
                reversed_at=utcnow(),
                reversal_reason=VOID_REASON,
            )
            .returning(Contribution.id)
            .execution_options(synchronize_session=False)
        )
    )
