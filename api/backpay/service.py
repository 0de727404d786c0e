"""Back-payment service 补缴: approvals by the bureaus, what a household may pay, paying once.

Rules (DOMAIN.md "Who does what"; issue 20):
- `hr_bureau` (人社) approves pension back-payments, `medical_bureau` (医保) medical ones; a
  bureau approving or withdrawing the other's insurance is refused (403 `wrong_bureau`).
- An approval names a person (by id), the insurance, past years (2000 … this Beijing year) with
  the amount of each as the decision states it (integer fen, more than 0), the decision's
  document number and an expiry date (today or later). The amount is the bureau's: nothing here
  computes or changes it. One live approval per person × insurance × year.
- Payable: approved, not withdrawn, not paid, `expires_on` on or after the day. Paying claims the
  approval with a conditional update (approved → paid, only while unexpired), so of two payments
  racing for it exactly one wins; the loser's money is refunded by the settlement.
- Every approval and withdrawal is an audit event (ids and amounts; never a name or ID number).
Services flush, never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.backpay.models import BackpayApproval, BackpayStatus
from api.db import utcnow
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.extensions.cursor import keyset, page
from api.households import service as households

# Which insurance each bureau decides (DOMAIN.md's roles table).
BUREAU_INSURANCE = {"hr_bureau": "pension", "medical_bureau": "medical"}
BUREAUS = tuple(BUREAU_INSURANCE)
FIRST_YEAR = 2000  # the tax record's lower bound for a year
# A typo guard, not a rule: one year's back-payment above 100,000 yuan is refused as a likely
# yuan/fen mix-up (the decision's amount is still the bureau's to enter).
MAX_AMOUNT_FEN = 10_000_000
RULE = "backpay.approved"


@dataclass(frozen=True)
class YearAmount:
    year: int
    amount_fen: int


@dataclass(frozen=True)
class Payable:
    """An approved, unpaid, unexpired back-payment (what the resident may pay)."""

    approval_id: int
    person_id: int
    insurance: str
    year: int
    amount_fen: int
    document_no: str
    expires_on: date
    pension_tier: int | None


def _own_insurance(role: str, insurance: str) -> None:
    if BUREAU_INSURANCE.get(role) != insurance:
        names = {"pension": "养老保险", "medical": "医疗保险"}
        raise Forbidden(f"本部门不能核定{names.get(insurance, insurance)}补缴", code="wrong_bureau")


def approve(
    session: Session,
    *,
    staff_id: int,
    role: str,
    person_id: int,
    insurance: str,
    years: Sequence[YearAmount],
    document_no: str,
    expires_on: date,
    today: date,
    pension_tier: int | None = None,
) -> list[BackpayApproval]:
    """Record a bureau's decision: one approval per year, each audited."""
    _own_insurance(role, insurance)
    errors: dict[str, list[str]] = {}
    if households.person_household_id(session, person_id=person_id) is None:
        raise NotFound("未找到该参保人", code="person_not_found")
    document = document_no.strip()
    if not document:
        errors["document_no"] = ["请填写核定文书编号"]
    if insurance == "pension" and (pension_tier is None or pension_tier < 1):
        errors["pension_tier"] = ["养老保险补缴须填写核定的缴费档次（元）"]
    if insurance == "medical" and pension_tier is not None:
        errors["pension_tier"] = ["医疗保险补缴没有缴费档次"]
    if expires_on < today:
        errors["expires_on"] = ["有效期不能早于今天"]
    seen: set[int] = set()
    for i, item in enumerate(years):
        problems = []
        if not FIRST_YEAR <= item.year <= today.year:
            problems.append(f"补缴年度应在 {FIRST_YEAR} 至 {today.year} 年之间")
        if item.year in seen:
            problems.append("年度重复")
        if not 0 < item.amount_fen <= MAX_AMOUNT_FEN:
            problems.append("金额应大于0且不超过100000元（单位：分）")
        seen.add(item.year)
        if problems:
            errors[f"years.{i}"] = problems
    if not years:
        errors["years"] = ["至少一个补缴年度"]
    if errors:
        raise InvalidInput(errors={"json": errors})
    approvals = [
        BackpayApproval(
            person_id=person_id,
            insurance=insurance,
            year=item.year,
            amount_fen=item.amount_fen,
            pension_tier=pension_tier,
            document_no=document,
            expires_on=expires_on,
            bureau=role,
            status=BackpayStatus.APPROVED,
            approved_by=staff_id,
            approved_at=utcnow(),
        )
        for item in years
    ]
    session.add_all(approvals)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict("该参保人该年度已有有效的补缴核定", code="backpay_exists") from exc
    for a in approvals:
        audit(
            session,
            actor=f"staff:{staff_id}",
            action="backpay.approved",
            subject=f"backpay:{a.id}",
            detail={
                "person_id": person_id,
                "insurance": insurance,
                "year": a.year,
                "amount_fen": a.amount_fen,
                "pension_tier": pension_tier,
                "document_no": document,
                "expires_on": expires_on.isoformat(),
            },
        )
    session.flush()
    return approvals


def withdraw(
    session: Session, *, staff_id: int, role: str, approval_id: int, reason: str
) -> BackpayApproval:
    """Withdraw an unpaid approval (conditional: a payment that got there first wins)."""
    approval = session.get(BackpayApproval, approval_id)
    if approval is None:
        raise NotFound("未找到该补缴核定", code="backpay_not_found")
    _own_insurance(role, approval.insurance)
    if not reason.strip():
        raise InvalidInput(errors={"json": {"reason": ["请填写撤销原因"]}})
    changed = session.scalar(
        update(BackpayApproval)
        .where(
            BackpayApproval.id == approval_id,
            BackpayApproval.status == BackpayStatus.APPROVED,
        )
        .values(
            status=BackpayStatus.WITHDRAWN,
            withdrawn_by=staff_id,
            withdrawn_at=utcnow(),
            withdrawal_reason=reason.strip()[:200],
        )
        .returning(BackpayApproval.id)
        .execution_options(synchronize_session=False)
    )
    session.refresh(approval)
    if changed is None:
        if approval.status == BackpayStatus.PAID:
            raise Conflict("该补缴已缴费，不能撤销", code="backpay_paid")
        raise Conflict("该补缴核定已撤销", code="backpay_withdrawn")
    audit(
        session,
        actor=f"staff:{staff_id}",
        action="backpay.withdrawn",
        subject=f"backpay:{approval_id}",
        detail={"reason": reason.strip()[:200], "person_id": approval.person_id},
    )
    session.flush()
    return approval


def list_approvals(
    session: Session,
    *,
    role: str,
    person_id: int | None,
    status: str | None,
    page_args: dict[str, Any] | None = None,
) -> tuple[list[BackpayApproval], str | None]:
    """A page of a bureau's own approvals (auditors see both bureaus'), newest first unless
    `order` is asc, by id cursor (`api.extensions.cursor`): (rows, next_cursor)."""
    args = page_args or {"limit": 500}
    query = select(BackpayApproval)
    if role in BUREAU_INSURANCE:
        query = query.where(BackpayApproval.insurance == BUREAU_INSURANCE[role])
    if person_id is not None:
        query = query.where(BackpayApproval.person_id == person_id)
    if status is not None:
        query = query.where(BackpayApproval.status == status)
    rows = session.scalars(keyset(query, BackpayApproval.id, args)).all()
    return page(rows, args, id_of=lambda a: a.id)


def payable(session: Session, *, person_ids: Iterable[int], on: date) -> list[Payable]:
    """The approved, unpaid, unexpired back-payments of `person_ids` on the Beijing date `on`."""
    ids = sorted(set(person_ids))
    if not ids:
        return []
    rows = session.scalars(
        select(BackpayApproval)
        .where(
            BackpayApproval.person_id.in_(ids),
            BackpayApproval.status == BackpayStatus.APPROVED,
            BackpayApproval.expires_on >= on,
        )
        .order_by(BackpayApproval.person_id, BackpayApproval.year, BackpayApproval.id)
    )
    return [
        Payable(
            approval_id=a.id,
            person_id=a.person_id,
            insurance=a.insurance,
            year=a.year,
            amount_fen=a.amount_fen,
            document_no=a.document_no,
            expires_on=a.expires_on,
            pension_tier=a.pension_tier,
        )
        for a in rows
    ]


def claim(session: Session, *, approval_ids: Iterable[int], order_id: int, on: date) -> set[int]:
    """Mark approvals paid by `order_id`; returns those claimed now.

    Conditional on approved and unexpired on `on`: an approval withdrawn, expired or already
    paid (a concurrent payment: PostgreSQL re-checks the condition after the other commits) is
    not claimed, and the caller refunds its item.
    """
    ids = sorted(set(approval_ids))
    if not ids:
        return set()
    claimed = session.scalars(
        update(BackpayApproval)
        .where(
            BackpayApproval.id.in_(ids),
            BackpayApproval.status == BackpayStatus.APPROVED,
            BackpayApproval.expires_on >= on,
        )
        .values(status=BackpayStatus.PAID, paid_at=utcnow(), order_id=order_id)
        .returning(BackpayApproval.id)
        .execution_options(synchronize_session=False)
    )
    return set(claimed)


def contributions_reversed(session: Session, contribution_ids: Sequence[int]) -> list[int]:
    """A refund reversed these contributions: their paid approvals become `reversed` (no
    longer live, so the bureau may approve the year again). Returns the approval ids."""
    if not contribution_ids:
        return []
    return list(
        session.scalars(
            update(BackpayApproval)
            .where(
                BackpayApproval.contribution_id.in_(list(contribution_ids)),
                BackpayApproval.status == BackpayStatus.PAID,
            )
            .values(status=BackpayStatus.REVERSED)
            .returning(BackpayApproval.id)
            .execution_options(synchronize_session=False)
        )
    )


def link_contributions(session: Session, contributions: dict[int, int]) -> None:
    """Record which contribution paid each claimed approval (unique: paid once)."""
    for approval_id, contribution_id in contributions.items():
        session.execute(
            update(BackpayApproval)
            .where(BackpayApproval.id == approval_id)
            .values(contribution_id=contribution_id)
            .execution_options(synchronize_session=False)
        )
