"""Two payments racing for one approval on PostgreSQL: exactly one claims it."""

from __future__ import annotations

import threading
from datetime import date

from flask import Flask
from sqlalchemy.orm import Session

from api.auth.models import StaffAccount
from api.backpay import service as backpay
from api.backpay.models import BackpayApproval
from tests.payments.factories import Member, make_household, make_order

ON = date(2019, 11, 5)


def test_a_concurrent_second_claim_of_one_approval_gets_nothing(pg_committing_app: Flask) -> None:
    engine = pg_committing_app.extensions["database"].engine
    with Session(engine) as session:
        household = make_household(session, [Member(date(1966, 1, 2))])
        staff = StaffAccount(
            username="hr", display_name="人社", password_hash="x", role="hr_bureau"
        )
        session.add(staff)
        session.flush()
        approval = BackpayApproval(
            person_id=household.members[0].id,
            insurance="pension",
            year=2018,
            amount_fen=60000,
            pension_tier=500,
            document_no="山人社补〔2019〕1号",
            expires_on=date(2019, 12, 31),
            bureau="hr_bureau",
            status="approved",
            approved_by=staff.id,
        )
        session.add(approval)
        first = make_order(session, household, status="closed")
        second = make_order(session, household)
        session.commit()
        approval_id, orders = approval.id, (first.id, second.id)

    results: dict[str, set[int]] = {}
    holder = Session(engine)
    results["first"] = backpay.claim(holder, approval_ids=[approval_id], order_id=orders[0], on=ON)

    def rival() -> None:
        with Session(engine) as other:
            results["second"] = backpay.claim(
                other, approval_ids=[approval_id], order_id=orders[1], on=ON
            )
            other.commit()

    thread = threading.Thread(target=rival)
    thread.start()
    thread.join(timeout=0.5)  # the rival waits on the row lock (or has not started yet)
    holder.commit()
    holder.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert results == {"first": {approval_id}, "second": set()}
    with Session(engine) as session:
        paid = session.get(BackpayApproval, approval_id)
        assert paid is not None and (paid.status, paid.order_id) == ("paid", orders[0])
