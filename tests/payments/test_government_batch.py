"""The government 代缴 batch (`payments government-batch`): what it books, exactly once.

A mixed household — a dibao member (medical + pension tier 100 paid by the government), a
poverty_lifted member (medical only: no tier 100 for them, DOMAIN.md), a plain member
(nothing) — on both backends; and two batches racing on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from datetime import date
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from api.audit.models import AuditEvent
from api.households.models import Household
from api.payments import pricing
from api.payments.government import run_government_batch
from api.payments.models import Contribution
from api.payments.outbox import OutboxMessage
from api.policy import load_policy
from tests.payments.factories import Member, make_account, make_household, token_for

POLICY = load_policy(2020)
MEDICAL = POLICY.medical.premium_fen
TIER100 = POLICY.pension.tier100_government_pays_fen
TODAY = "2019-11-05"


def _mixed(session: Any) -> Household:
    return make_household(
        session,
        [
            Member(date(1970, 4, 1), categories=("dibao",), name="张低保"),
            Member(date(1985, 6, 1), categories=("poverty_lifted",), name="李脱贫"),
            Member(date(1990, 8, 1), name="王普通"),
        ],
    )


def _cli(app: Flask, *args: str) -> dict[str, Any]:
    result = app.test_cli_runner().invoke(args=["payments", "government-batch", *args])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return report


def _count(session: Any, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_batch_books_the_government_items_once(app: Flask, session: Any) -> None:
    app.config["APP_TODAY"] = TODAY
    household = _mixed(session)
    dibao, lifted, plain = (p.id for p in household.members)
    town = household.village.town.code
    session.commit()

    report = _cli(app, "--year", "2020", "--town", town)
    assert report["persons"] == 2
    assert report["insurances"] == {
        "medical": {"contributions": 2, "government_pays_fen": 2 * MEDICAL},
        "pension": {"contributions": 1, "government_pays_fen": TIER100},
    }
    rows = session.execute(
        select(
            Contribution.person_id,
            Contribution.insurance,
            Contribution.amount_fen,
            Contribution.government_pays_fen,
            Contribution.pension_tier,
            Contribution.source,
            Contribution.late,
            Contribution.benefit_start,
            Contribution.order_id,
        ).order_by(Contribution.person_id, Contribution.insurance)
    ).all()
    start = POLICY.coverage_start
    assert [tuple(r) for r in rows] == [
        (dibao, "medical", 0, MEDICAL, None, "government", False, start, None),
        (dibao, "pension", 0, TIER100, 100, "government", False, start, None),
        (lifted, "medical", 0, MEDICAL, None, "government", False, start, None),
    ]
    records = [
        json.loads(body)
        for body in session.scalars(select(OutboxMessage.body).order_by(OutboxMessage.body))
    ]
    assert len(records) == 3
    assert {(r["insurance"], r["amount_fen"], r["government_pays_fen"]) for r in records} == {
        ("medical", 0, MEDICAL),
        ("pension", 0, TIER100),
    }
    assert all(r["source"] == "government" and r["event"] == "contribution.paid" for r in records)
    assert all(r["out_trade_no"] is None and r["town_code"] == town for r in records)
    pension = next(r for r in records if r["insurance"] == "pension")
    assert (pension["pension_tier"], pension["subsidy_fen"]) == (100, 3000)
    audited = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "payments.government_batch")
    ).all()
    assert len(audited) == 1 and audited[0].detail["persons"] == 2
    assert "张低保" not in json.dumps(audited[0].detail, ensure_ascii=False)

    # Re-running books nothing new: no contribution, no record, no audit event.
    again = _cli(app, "--year", "2020", "--town", town)
    assert again["persons"] == 0 and again["already_paid"] == 3
    assert _count(session, Contribution) == 3
    assert _count(session, OutboxMessage) == 3
    assert _count(session, AuditEvent, AuditEvent.action == "payments.government_batch") == 1

    # A resident order now owes only the plain member's medical premium (what orders price).
    dues = pricing.dues(
        session,
        household_id=household.id,
        year=2020,
        on=date.fromisoformat(TODAY),
        insurances=("medical", "pension"),
    )
    assert [(d.person_id, d.insurance) for d in dues] == [(plain, "medical")]


def test_premiums_page_shows_government_items_paid(app: Flask, session: Any, client: Any) -> None:
    app.config["APP_TODAY"] = TODAY
    household = _mixed(session)
    account = make_account(session, household)
    session.commit()
    token = token_for(app, account)

    def statuses() -> list[tuple[str, str]]:
        r = client.get(
            f"/api/v1/households/{household.id}/premiums?year=2020",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.get_json()
        return [(m["medical"]["status"], m["pension"]["status"]) for m in r.get_json()["members"]]

    before = statuses()
    assert before == [("government", "government"), ("government", "tier_required"),
                      ("unpaid", "tier_required")]  # fmt: skip
    _cli(app, "--year", "2020")
    assert statuses() == [("paid", "paid"), ("paid", "tier_required"), ("unpaid", "tier_required")]


def test_dry_run_writes_nothing(app: Flask, session: Any) -> None:
    app.config["APP_TODAY"] = TODAY
    household = _mixed(session)
    session.commit()
    report = _cli(app, "--year", "2020", "--town", household.village.town.code, "--dry-run")
    assert report["dry_run"] is True
    assert report["persons"] == 2
    assert report["insurances"]["medical"]["contributions"] == 2
    assert _count(session, Contribution) == 0
    assert _count(session, OutboxMessage) == 0
    assert _count(session, AuditEvent, AuditEvent.action == "payments.government_batch") == 0


def test_department_and_town_filters(app: Flask, session: Any) -> None:
    app.config["APP_TODAY"] = TODAY
    household = _mixed(session)
    other = _mixed(session)
    # The dibao member's category was asserted by the civil-affairs bureau's list.
    household.members[0].categories[0].source = "minzheng"
    session.commit()
    town = household.village.town.code
    only = _cli(app, "--year", "2020", "--town", town, "--department", "minzheng")
    assert only["persons"] == 1
    assert only["insurances"]["medical"]["contributions"] == 1
    assert only["insurances"]["pension"]["contributions"] == 1
    booked = set(session.execute(select(Contribution.person_id, Contribution.insurance)).all())
    dibao = household.members[0].id
    assert booked == {(dibao, "medical"), (dibao, "pension")}
    assert not any(p.id == pid for p in other.members for pid, _ in booked)
    # An unknown year is refused with a message, not a traceback.
    result = app.test_cli_runner().invoke(args=["payments", "government-batch", "--year", "1999"])
    assert result.exit_code != 0 and "1999" in result.output


def test_two_batches_racing_book_once_on_postgresql(pg_committing_app: Flask) -> None:
    app = pg_committing_app
    saved = app.config.get("APP_TODAY", "")
    app.config["APP_TODAY"] = TODAY
    db = app.extensions["database"]
    try:
        with app.app_context():
            households = [_mixed(db.session()) for _ in range(5)]
            db.session().commit()
            db.session.remove()
        assert households
        reports: list[Any] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def run() -> None:
            try:
                with app.app_context():
                    barrier.wait(10)
                    reports.append(
                        run_government_batch(db, year=2020, on=date.fromisoformat(TODAY))
                    )
                    db.session.remove()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        booked = sum(sum(r.contributions.values()) for r in reports)
        assert booked == 15  # 5 households × 3 government items, between the two batches
        with app.app_context():
            session = db.session()
            assert _count(session, Contribution) == 15
            assert _count(session, OutboxMessage) == 15
            db.session.remove()
    finally:
        app.config["APP_TODAY"] = saved


def test_a_government_paid_newborn_is_covered_from_birth(app: Flask, session: Any) -> None:
    """DOMAIN.md "Newborns": a dibao family's baby born in March 2020 is covered from its
    birth, not from 2020-01-01 (before it was born); the adult with the year."""
    app.config["APP_TODAY"] = "2020-04-10"
    household = make_household(
        session,
        [
            Member(date(1990, 4, 1), categories=("dibao",), name="张低保"),
            Member(date(2020, 3, 2), categories=("dibao",), name="张小宝"),
        ],
    )
    adult, baby = (p.id for p in household.members)
    session.commit()
    _cli(app, "--year", "2020", "--town", household.village.town.code)
    starts = dict(
        session.execute(
            select(Contribution.person_id, Contribution.benefit_start).where(
                Contribution.insurance == "medical"
            )
        ).all()
    )
    assert starts == {adult: date(2020, 1, 1), baby: date(2020, 3, 2)}
    records = [
        json.loads(b)
        for b in session.scalars(
            select(OutboxMessage.body)
            .join(Contribution, Contribution.id == OutboxMessage.contribution_id)
            .where(Contribution.person_id == baby)
        )
    ]
    assert [r["benefit_start"] for r in records] == ["2020-03-02"]
