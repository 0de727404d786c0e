"""The ledger 缴费台账: booking and reversing `Contribution` rows with their tax records.

Every contribution is written together with its outbox record (`contribution.paid`), and every
reversal with its reversal record (`contribution.reversed`), in the caller's transaction
(transactional outbox, DESIGN.md "The tax-side reconciliation queue"). Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from api.clock import BEIJING
from api.db import utcnow
from api.households.models import Household, Person, Town, Village
from api.payments.models import Contribution, ContributionStatus, OrderItem, PaymentOrder
from api.payments.outbox import ContributionEvent, enqueue_contribution_event


def already_paid(
    session: Session, *, year: int, keys: Iterable[tuple[int, str]]
) -> set[tuple[int, str]]:
    """Which (person, insurance) of `keys` already have a paid contribution for `year`."""
    wanted = list(set(keys))
    if not wanted:
        return set()
    rows = session.execute(
        select(Contribution.person_id, Contribution.insurance).where(
            Contribution.year == year,
            Contribution.status == ContributionStatus.PAID,
            tuple_(Contribution.person_id, Contribution.insurance).in_(wanted),
        )
    )
    return {(pid, ins) for pid, ins in rows}


def paid_on(paid_at: datetime) -> date:
    """The Beijing date a payment counts on; with APP_TODAY pinned (demo), that date."""
    from api.clock import _pinned

    pinned = _pinned()
    return pinned if pinned is not None else paid_at.astimezone(BEIJING).date()


def book_contributions(
    session: Session,
    *,
    order: PaymentOrder,
    items: Sequence[OrderItem],
    paid_at: datetime,
    source: str,
) -> list[Contribution]:
    """One `Contribution` per item plus its tax record (outbox), in the caller's transaction.

    A concurrent payment of the same premium makes the flush fail on the partial unique
    index: the caller rolls back and re-applies, and then sees the overlap.
    """
    if not items:
        return []
    from api.payments.pricing import benefit_start  # pricing uses this module too

    day = paid_on(paid_at)
    contributions = []
    for item in items:
        contribution = Contribution(
            person_id=item.person_id,
            household_id=order.household_id,
            insurance=item.insurance,
            year=item.year,
            amount_fen=item.amount_fen,
            government_pays_fen=item.government_pays_fen,
            subsidy_fen=item.subsidy_fen,
            pension_tier=item.pension_tier,
            source=source,
            order_id=order.id,
            order_item_id=item.id,
            out_trade_no=order.out_trade_no,
            channel_transaction_id=order.transaction_id,
            paid_at=paid_at,
            late=item.late,
            benefit_start=benefit_start(year=item.year, insurance=item.insurance, paid_on=day),
            status=ContributionStatus.PAID,
        )
        session.add(contribution)
        contributions.append(contribution)
    session.flush()
    enqueue_events(session, contributions, event="contribution.paid")
    return contributions


@dataclass(frozen=True)
class _Who:
    id_number: str
    name: str
    household_no: str
    village_code: str
    town_code: str


def _people(session: Session, person_ids: Iterable[int]) -> dict[int, _Who]:
    rows = session.execute(
        select(
            Person.id,
            Person.id_number,
            Person.name,
            Household.household_no,
            Village.code,
            Town.code,
        )
        .join(Household, Person.household_id == Household.id)
        .join(Village, Household.village_id == Village.id)
        .join(Town, Village.town_id == Town.id)
        .where(Person.id.in_(set(person_ids)))
    )
    return {pid: _Who(idn, name, hno, vcode, tcode) for pid, idn, name, hno, vcode, tcode in rows}


def enqueue_events(
    session: Session,
    contributions: Sequence[Contribution],
    *,
    event: str,
    reason: str | None = None,
) -> None:
    """The tax record of each contribution (paid or reversed), in the same transaction."""
    people = _people(session, (c.person_id for c in contributions))
    for c in contributions:
        who = people[c.person_id]
        enqueue_contribution_event(
            session,
            ContributionEvent(
                event=event,  # type: ignore[arg-type]
                contribution_id=c.id,
                year=c.year,
                insurance=c.insurance,  # type: ignore[arg-type]
                id_number=who.id_number,
                name=who.name,
                household_id=c.household_id,
                household_no=who.household_no,
                town_code=who.town_code,
                village_code=who.village_code,
                pension_tier=c.pension_tier,
                amount_fen=c.amount_fen,
                government_pays_fen=c.government_pays_fen,
                subsidy_fen=c.subsidy_fen,
                source=c.source,  # type: ignore[arg-type]
                channel_transaction_id=c.channel_transaction_id,
                out_trade_no=c.out_trade_no,
                paid_at=c.paid_at,
                late=c.late,
                benefit_start=c.benefit_start,
                reason=reason,
            ),
        )


def reverse_contributions(
    session: Session, contribution_ids: Sequence[int], *, reason: str
) -> list[Contribution]:
    """Mark paid contributions reversed (refunded) and queue a reversal record for each.

    Conditional on `status = paid`: a contribution is reversed once, whoever gets there first.
    """
    if not contribution_ids:
        return []
    now = utcnow()
    reversed_ids = list(
        session.scalars(
            update(Contribution)
            .where(
                Contribution.id.in_(contribution_ids),
                Contribution.status == ContributionStatus.PAID,
            )
            .values(status=ContributionStatus.REVERSED, reversed_at=now, reversal_reason=reason)
            .returning(Contribution.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not reversed_ids:
        return []
    rows = list(session.scalars(select(Contribution).where(Contribution.id.in_(reversed_ids))))
    for row in rows:
        session.refresh(row)
    enqueue_events(session, rows, event="contribution.reversed", reason=reason)
    return rows
