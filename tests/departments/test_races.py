"""Each effect exactly once when applies and approvals race (PostgreSQL, threads): the same
upload applied twice at once, two identical uploads of one department, two departments listing
the same person, two death lists, and one batch approved twice at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from api.departments import batches, lists
from api.departments.models import BatchLine, CategoryChange, ChangeEffect
from api.errors import Conflict
from api.households.models import Person
from api.payments.models import Contribution, Refund
from api.payments.outbox import OutboxMessage
from tests.departments.helpers import MEDICAL, count, csv_of, paid_order, row
from tests.payments.factories import Member, make_household, make_order

DAY = date(2019, 11, 5)


def _race(app: Flask, work: Callable[[Any], Any], n: int = 2) -> list[Any]:
    """Run `work(session)` in `n` threads at once, each committing its own transaction."""
    db = app.extensions["database"]
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with app.app_context():
                session = db.session()
                barrier.wait(10)
                try:
                    results.append(work(session))
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
                finally:
                    db.session.remove()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return [*results, *errors]


def _upload(session: Any, department: str, data: bytes) -> int:
    up = lists.upload_list(
        session, department=department, year=2020, file_name="l.csv", data=data, actor="staff:d"
    )
    return up.id


@pytest.fixture
def pg_app(pg_committing_app: Flask) -> Iterator[Flask]:
    """The committing PostgreSQL app on the demo day; its config is restored afterwards (the
    app object is shared by the whole run)."""
    saved = pg_committing_app.config.get("APP_TODAY", "")
    pg_committing_app.config["APP_TODAY"] = DAY.isoformat()
    try:
        yield pg_committing_app
    finally:
        pg_committing_app.config["APP_TODAY"] = saved


def test_applies_racing_change_each_thing_once(pg_app: Flask) -> None:
    app = pg_app
    db = app.extensions["database"]
    with app.app_context():
        session = db.session()
        h = make_household(
            session,
            [Member(date(1970, 4, 1), name="王大明"), Member(date(1972, 5, 1), name="李秀兰")],
        )
        a, b = h.members
        order = make_order(session, h, items=[(a, "medical", MEDICAL), (b, "medical", MEDICAL)])
        paid = paid_order(session, h, b, "pension", 50000)
        same = _upload(session, "civil_affairs", csv_of(row(a, "dibao")))
        twins = [_upload(session, "civil_affairs", csv_of(row(a, "dibao"))) for _ in range(2)]
        other = _upload(session, "poverty_office", csv_of(row(a, "poverty_registered")))
        deaths = [
            _upload(session, "police", csv_of(row(b, "death", day="2019-10-20"))) for _ in range(2)
        ]
        session.commit()
        ids = {"a": a.id, "b": b.id, "order": order.out_trade_no, "paid": paid.id}
        db.session.remove()

    def apply(upload_id: int, department: str) -> Callable[[Any], Any]:
        return lambda s: (
            lists.apply_upload(
                s, upload_id=upload_id, department=department, actor="staff:d", today=DAY
            ).close_order_ids
        )

    # The same upload confirmed twice at once: one applies, the other changes nothing.
    outcomes = _race(app, apply(same, "civil_affairs"))
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    # Two identical uploads of one department at once: the second finds the first's state.
    it = iter(twins)
    outcomes += _race(app, lambda s: apply(next(it), "civil_affairs")(s))
    # 扶贫办 lists the same person too, racing a repeated 民政 apply (already applied: no-op).
    gen = iter([(other, "poverty_office"), (same, "civil_affairs")])
    outcomes += _race(app, lambda s: apply(*next(gen))(s))
    # Two death lists for b at once.
    dit = iter(deaths)
    outcomes += _race(app, lambda s: apply(next(dit), "police")(s))
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes

    with app.app_context():
        session = db.session()
        added = session.scalars(
            select(CategoryChange).where(CategoryChange.person_id == ids["a"])
        ).all()
        assert sorted((c.department, c.key, c.change) for c in added) == [
            ("civil_affairs", "dibao", "added"),
            ("poverty_office", "poverty_registered", "added"),
        ]
        closed = session.scalars(
            select(ChangeEffect).where(ChangeEffect.kind == "order_closed")
        ).all()
        assert sorted((e.person_id, e.ref) for e in closed) == sorted(
            {(ids["a"], ids["order"]), (ids["b"], ids["order"])}
        )
        assert count(session, ChangeEffect, ChangeEffect.kind == "death_recorded") == 1
        # b's pension was paid (2019-11-05) after the death (2019-10-20): refunded once.
        assert count(session, Refund) == 1
        assert count(session, CategoryChange, CategoryChange.key == "death") == 1
        db.session.remove()


def test_batch_approved_twice_at_once_books_once(pg_app: Flask) -> None:
    app = pg_app
    db = app.extensions["database"]
    with app.app_context():
        session = db.session()
        h = make_household(
            session,
            [Member(date(1970, 4, 1), name="王大明"), Member(date(1972, 5, 1), name="李秀兰")],
        )
        up = _upload(session, "civil_affairs", csv_of(*(row(p, "dibao") for p in h.members)))
        lists.apply_upload(
            session, upload_id=up, department="civil_affairs", actor="staff:d", today=DAY
        )
        batch = batches.submit(
            session, department="civil_affairs", year=2020, on=DAY, actor="staff:d"
        )
        session.commit()
        batch_id = batch.id
        person_ids = [p.id for p in h.members]
        db.session.remove()
    names = iter(["staff:f1", "staff:f2"])
    outcomes = _race(
        app, lambda s: batches.approve(s, batch_id=batch_id, actor=next(names), on=DAY).status
    )
    assert outcomes == ["approved", "approved"], outcomes
    # A third person listed; two submits racing: one batch holds the line, the other is
    # refused (batch_line_taken, or batch_empty when it came second).
    with app.app_context():
        session = db.session()
        h2 = make_household(session, [Member(date(1975, 4, 1), name="张小红")])
        everyone = [*(session.get(Person, pid) for pid in person_ids), h2.members[0]]
        up = _upload(session, "civil_affairs", csv_of(*(row(p, "dibao") for p in everyone)))
        session.commit()
        lists.apply_upload(
            session, upload_id=up, department="civil_affairs", actor="staff:d", today=DAY
        )
        session.commit()
        db.session.remove()
    outcomes = _race(
        app,
        lambda s: (
            batches.submit(s, department="civil_affairs", year=2020, on=DAY, actor="staff:d").id
        ),
    )
    won = [o for o in outcomes if isinstance(o, int)]
    lost = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert lost[0].code in ("batch_line_taken", "batch_empty")
    with app.app_context():
        session = db.session()
        assert count(session, Contribution, Contribution.source == "government") == 2
        assert count(session, OutboxMessage) == 2
        assert count(session, BatchLine) == 3
        db.session.remove()
