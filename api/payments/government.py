"""Government 代缴 batch: booking the premiums district finance pays on a person's behalf.

DOMAIN.md "Medical premium" / "Pension tiers and subsidy": the government-paid groups owe 0
themselves, and "the paying department's batch (代缴) settles them". Until it does, those
premiums exist only as a quote (`status: government` on the premiums page) and the tax side
never hears of them — issue 5 wants every government-paid contribution on the queue too.

What is booked, per person × insurance × year, as a `Contribution` with `source="government"`
and its `contribution.paid` tax record in the same transaction (transactional outbox):
- medical: `rules.quote_medical` says due, `owed_fen == 0`, `government_pays_fen > 0`
  (the government categories);
- pension: eligible, tier 100, `owed_fen == 0`, `government_pays_fen > 0` (the tier-100
  categories; a member who chose a higher tier pays the difference through an order, and that
  order's contribution already carries the government part).

Amounts (the record schema: `amount_fen` "what the payer paid", `government_pays_fen`
"paid by district finance on the person's behalf"): a government contribution carries
`amount_fen = 0` and `government_pays_fen` = what the government pays. Every record then
reads the same way — the premium booked is `amount_fen + government_pays_fen`, as for a
tier-100 member paying a higher tier — and a tax side summing both columns never counts the
government's money twice. `subsidy_fen` is the pension subsidy, as in any other record.

Reading: the government pays on time by definition (the 逾期 rule is about what a payer owes,
`rules.quote_medical`), so `late` is false and cover starts with the insurance year
(`policy.coverage_start`) whenever the batch runs.

Exactly once: a premium already paid (any source) is skipped, and the partial unique index on
paid contributions refuses a second one if two batches (or a batch and a counter payment) race;
the losing chunk is rolled back and recomputed (`notify.in_transaction`), then books nothing.
One transaction per chunk of persons, each audited; nothing commits in dry-run mode.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from api.audit.service import record as audit
from api.clock import now as clock_now
from api.db import Database, analyze, utcnow
from api.errors import InvalidInput
from api.households.models import Household, Person, PersonCategory, Town, Village
from api.payments import ledger
from api.payments.models import Contribution, ContributionStatus
from api.payments.notify import in_transaction
from api.payments.outbox import ContributionEvent, enqueue_contribution_event
from api.payments.pricing import facts_of
from api.policy import Policy, load_policy, rules
from api.policy.errors import UnknownYear

log = logging.getLogger(__name__)

SOURCE: Literal["government"] = "government"
Insurance = Literal["medical", "pension"]
CHUNK_SIZE = 500
INSURANCES: tuple[Insurance, ...] = ("medical", "pension")


@dataclass(frozen=True)
class GovernmentItem:
    """One premium the government pays: who, which insurance, how much, and where they live."""

    person_id: int
    household_id: int
    insurance: Insurance
    government_pays_fen: int
    subsidy_fen: int
    pension_tier: int | None
    id_number: str
    name: str
    household_no: str
    village_code: str
    town_code: str
    benefit_start: date | None = None  # None: with the year (coverage_start)


@dataclass
class BatchReport:
    """What a batch booked (or, in dry-run mode, would book); printed by the CLI."""

    year: int
    dry_run: bool
    department: str | None
    town: str | None
    chunks: int = 0
    persons: set[int] = field(default_factory=set)
    contributions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INSURANCES, 0))
    government_pays_fen: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(INSURANCES, 0)
    )
    already_paid: int = 0

    def add(self, items: Sequence[GovernmentItem]) -> None:
        for item in items:
            self.persons.add(item.person_id)
            self.contributions[item.insurance] += 1
            self.government_pays_fen[item.insurance] += item.government_pays_fen

    def as_dict(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "dry_run": self.dry_run,
            "department": self.department,
            "town": self.town,
            "chunks": self.chunks,
            "persons": len(self.persons),
            "already_paid": self.already_paid,
            "insurances": {
                ins: {
                    "contributions": self.contributions[ins],
                    "government_pays_fen": self.government_pays_fen[ins],
                }
                for ins in INSURANCES
            },
        }


def _policy(year: int) -> Policy:
    try:
        return load_policy(year)
    except UnknownYear as exc:
        raise InvalidInput(f"{year} 年度缴费政策尚未发布", code="unknown_year") from exc


def _paying_categories(policy: Policy) -> dict[str, frozenset[str]]:
    """Per insurance, the categories whose premium the government pays (policy data)."""
    return {
        "medical": policy.medical.government_categories,
        "pension": policy.pension.tier100_categories,
    }


def candidate_person_ids(
    session: Session, *, policy: Policy, department: str | None, town: str | None
) -> list[int]:
    """Persons with a category the government pays for (asserted by `department` if given),
    in `town` if given; ordered by id so chunks are stable."""
    every = frozenset().union(*_paying_categories(policy).values())
    query = (
        select(Person.id)
        .join(PersonCategory, PersonCategory.person_id == Person.id)
        .where(PersonCategory.category.in_(sorted(every)))
    )
    if department is not None:
        query = query.where(PersonCategory.source == department)
    if town is not None:
        query = (
            query.join(Household, Household.id == Person.household_id)
            .join(Village, Village.id == Household.village_id)
            .join(Town, Town.id == Village.town_id)
            .where(Town.code == town)
        )
    return list(session.scalars(query.distinct().order_by(Person.id)))


def government_items(
    session: Session,
    *,
    policy: Policy,
    person_ids: Sequence[int],
    on: date,
    department: str | None,
    skip_medical_sources: frozenset[str] = frozenset(),
) -> list[GovernmentItem]:
    """What the government pays for these persons on `on` (per the rules), paid or not.

    `skip_medical_sources`: a person whose government-paid medical category was asserted by
    one of these sources is left out of the medical items (a department's own 代缴 batch,
    api/departments, pays that premium).
    """
    paying = _paying_categories(policy)
    persons = session.scalars(
        select(Person)
        .where(Person.id.in_(person_ids))
        .options(
            selectinload(Person.categories),
            selectinload(Person.enrollments),
            selectinload(Person.household)
            .selectinload(Household.village)
            .selectinload(Village.town),
        )
        .order_by(Person.id)
    ).all()
    items: list[GovernmentItem] = []
    for person in persons:
        asserted = {
            c.category for c in person.categories if department is None or c.source == department
        }
        by_department = any(
            c.source in skip_medical_sources and c.category in paying["medical"]
            for c in person.categories
        )
        quote = rules.quote_member(policy, facts_of(person, policy.year, policy), on)
        found: list[tuple[Insurance, int, int, int | None]] = []
        medical, pension = quote.medical, quote.pension
        if (
            asserted & paying["medical"]
            and not by_department
            and medical.due
            and medical.owed_fen == 0
            and medical.government_pays_fen > 0
        ):
            found.append(("medical", medical.government_pays_fen, medical.subsidy_fen, None))
        if (
            asserted & paying["pension"]
            and pension.eligible
            and pension.tier == 100
            and pension.owed_fen == 0
            and pension.government_pays_fen > 0
        ):
            found.append(
                ("pension", pension.government_pays_fen, pension.subsidy_fen, pension.tier)
            )
        household = person.household
        items.extend(
            GovernmentItem(
                person_id=person.id,
                household_id=household.id,
                insurance=insurance,
                government_pays_fen=pays,
                subsidy_fen=subsidy,
                pension_tier=tier,
                id_number=person.id_number,
                name=person.name,
                household_no=household.household_no,
                village_code=household.village.code,
                town_code=household.village.town.code,
                benefit_start=_newborn_cover(policy, person.birth_date, insurance),
            )
            for insurance, pays, subsidy, tier in found
        )
    return items


def _newborn_cover(policy: Policy, birth_date: date, insurance: str) -> date | None:
    """A government-paid newborn (DOMAIN.md "Newborns") is covered from birth — never from
    before it — whenever the department's batch runs; everyone else with the year."""
    if insurance != "medical" or birth_date < policy.medical.newborn.born_on_or_after:
        return None
    return max(birth_date, policy.coverage_start)


def book_government(
    session: Session,
    *,
    policy: Policy,
    items: Sequence[GovernmentItem],
    paid_at: datetime,
    paying_department: str | None = None,
) -> list[int]:
    """Insert the contributions and their tax records in the caller's transaction (flush
    only). The caller has removed what is already paid; a race is refused by the index.
    `paying_department`: the department whose batch pays (None: district finance)."""
    if not items:
        return []
    now = utcnow()
    rows = [
        {
            "person_id": item.person_id,
            "household_id": item.household_id,
            "insurance": item.insurance,
            "year": policy.year,
            "amount_fen": 0,
            "government_pays_fen": item.government_pays_fen,
            "subsidy_fen": item.subsidy_fen,
            "pension_tier": item.pension_tier,
            "source": SOURCE,
            "order_id": None,
            "order_item_id": None,
            "out_trade_no": None,
            "channel_transaction_id": None,
            "paid_at": paid_at,
            "late": False,
            "benefit_start": item.benefit_start or policy.coverage_start,
            "status": ContributionStatus.PAID.value,
            "paying_department": paying_department,
            "created_at": now,
        }
        for item in items
    ]
    ids = list(
        session.scalars(
            insert(Contribution).returning(Contribution.id, sort_by_parameter_order=True), rows
        )
    )
    for contribution_id, item in zip(ids, items, strict=True):
        enqueue_contribution_event(
            session,
            ContributionEvent(
                event="contribution.paid",
                contribution_id=contribution_id,
                year=policy.year,
                insurance=item.insurance,
                id_number=item.id_number,
                name=item.name,
                household_id=item.household_id,
                household_no=item.household_no,
                town_code=item.town_code,
                village_code=item.village_code,
                pension_tier=item.pension_tier,
                amount_fen=0,
                government_pays_fen=item.government_pays_fen,
                subsidy_fen=item.subsidy_fen,
                source=SOURCE,
                channel_transaction_id=None,
                out_trade_no=None,
                paid_at=paid_at,
                late=False,
                benefit_start=item.benefit_start or policy.coverage_start,
            ),
        )
    return ids


@dataclass(frozen=True)
class _ChunkResult:
    booked: list[GovernmentItem]
    already_paid: int


def run_government_batch(
    db: Database,
    *,
    year: int,
    on: date,
    department: str | None = None,
    town: str | None = None,
    dry_run: bool = False,
    actor: str = "cli:government-batch",
    chunk_size: int = CHUNK_SIZE,
    skip_medical_sources: frozenset[str] = frozenset(),
) -> BatchReport:
    """Book every government-paid premium of `year` not yet paid; returns the summary.

    Commits once per chunk (a worker-style job); in dry-run mode every chunk is rolled back,
    so the report says what would be booked and nothing is written.
    """
    policy = _policy(year)
    report = BatchReport(year=year, dry_run=dry_run, department=department, town=town)
    session = db.session()
    person_ids = candidate_person_ids(session, policy=policy, department=department, town=town)
    session.rollback()

    for start in range(0, len(person_ids), chunk_size):
        chunk = person_ids[start : start + chunk_size]

        def work(session: Session, chunk: Sequence[int] = chunk) -> _ChunkResult:
            items = government_items(
                session,
                policy=policy,
                person_ids=chunk,
                on=on,
                department=department,
                skip_medical_sources=skip_medical_sources,
            )
            paid = ledger.already_paid(
                session, year=year, keys=((i.person_id, i.insurance) for i in items)
            )
            todo = [i for i in items if (i.person_id, i.insurance) not in paid]
            if todo and not dry_run:
                book_government(session, policy=policy, items=todo, paid_at=clock_now())
                audit(
                    session,
                    actor=actor,
                    action="payments.government_batch",
                    subject=f"government-batch:{year}",
                    detail={
                        "year": year,
                        "department": department,
                        "town": town,
                        "persons": len({i.person_id for i in todo}),
                        "contributions": {
                            ins: sum(1 for i in todo if i.insurance == ins) for ins in INSURANCES
                        },
                        "government_pays_fen": {
                            ins: sum(i.government_pays_fen for i in todo if i.insurance == ins)
                            for ins in INSURANCES
                        },
                    },
                )
            return _ChunkResult(todo, len(items) - len(todo))

        if dry_run:
            result = work(db.session())
            db.session().rollback()
        else:
            result = in_transaction(db, work)
        report.chunks += 1
        report.add(result.booked)
        report.already_paid += result.already_paid
    if not dry_run and report.chunks:
        session = db.session()
        analyze(session, "contributions", "audit_events")  # a bulk write: fresh statistics
        session.commit()
    log.info(
        "government batch done",
        extra={"year": year, "dry_run": dry_run, "persons": len(report.persons)},
    )
    return report


@dataclass(frozen=True)
class PaidFact:
    """A paid contribution as the department batches and death handling need it."""

    id: int
    person_id: int
    insurance: str
    year: int
    source: str
    paying_department: str | None
    out_trade_no: str | None
    paid_at: datetime
    amount_fen: int
    government_pays_fen: int


def paid_facts(
    session: Session,
    *,
    person_ids: Sequence[int] | None = None,
    year: int | None = None,
    paying_department: str | None = None,
) -> list[PaidFact]:
    """Paid (not reversed) contributions of these persons / this year / this department."""
    query = select(
        Contribution.id,
        Contribution.person_id,
        Contribution.insurance,
        Contribution.year,
        Contribution.source,
        Contribution.paying_department,
        Contribution.out_trade_no,
        Contribution.paid_at,
        Contribution.amount_fen,
        Contribution.government_pays_fen,
    ).where(Contribution.status == ContributionStatus.PAID)
    if person_ids is not None:
        query = query.where(Contribution.person_id.in_(list(person_ids)))
    if year is not None:
        query = query.where(Contribution.year == year)
    if paying_department is not None:
        query = query.where(
            Contribution.source == SOURCE, Contribution.paying_department == paying_department
        )
    rows = session.execute(query.order_by(Contribution.id)).all()
    return [PaidFact(**row._mapping) for row in rows]
