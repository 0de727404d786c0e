"""End to end against the local sandbox: a newborn in a household order, and back-payments
(补缴) approved by the HR bureau paid online — alone or with the year's items — booked as
contributions of their own year and kind, on the tax queue with that year, paid once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
import requests
from sqlalchemy import select

from api.backpay.models import BackpayApproval
from api.payments.models import Contribution
from api.payments.outbox import OutboxMessage
from tests.payments.factories import Member
from tests.payments.test_payments_flows import (
    LATE_MEDICAL,
    MEDICAL,
    Family,
    _family,
    _get,
    _order,
    _pay,
    _staff_token,
    _wait,
)


@pytest.fixture
def today(shop: Any) -> Iterator[Callable[[str], None]]:
    """Pin the app's date (APP_TODAY); the concentrated payment phase by default."""
    app = shop.app
    saved = app.config.get("APP_TODAY", "")

    def pin(day: str) -> None:
        app.config["APP_TODAY"] = day

    pin("2019-11-05")
    yield pin
    app.config["APP_TODAY"] = saved


def _records(app: Any, out_trade_no: str) -> list[dict[str, Any]]:
    db = app.extensions["database"]
    with app.app_context():
        bodies = (
            db.session()
            .scalars(
                select(OutboxMessage.body)
                .join(Contribution, Contribution.id == OutboxMessage.contribution_id)
                .where(Contribution.out_trade_no == out_trade_no)
            )
            .all()
        )
        db.session.remove()
    return [json.loads(b) for b in bodies]


def _contributions(app: Any, out_trade_no: str) -> list[tuple[int, str, int, str, int, str]]:
    db = app.extensions["database"]
    with app.app_context():
        rows = (
            db.session()
            .execute(
                select(
                    Contribution.person_id,
                    Contribution.insurance,
                    Contribution.year,
                    Contribution.kind,
                    Contribution.amount_fen,
                    Contribution.benefit_start,
                )
                .where(Contribution.out_trade_no == out_trade_no)
                .order_by(Contribution.id)
            )
            .all()
        )
        db.session.remove()
    return [(r[0], r[1], r[2], r[3], r[4], r[5].isoformat()) for r in rows]


def _premiums(live: Any, family: Family) -> dict[str, Any]:
    r = requests.get(
        f"{live.url}/api/v1/households/{family.household_id}/premiums?year=2020",
        headers={"Authorization": f"Bearer {family.token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_newborn_in_a_household_order_pays_260_covered_from_birth(shop, sandbox, today) -> None:
    today("2020-03-15")  # after the window: the adults pay late, the baby does not
    family = _family(
        shop.app,
        [Member(date(1990, 5, 1)), Member(date(1992, 8, 8)), Member(date(2020, 2, 1))],
    )
    baby = family.person_ids[2]
    page = _premiums(shop, family)
    medical = {m["person_id"]: m["medical"] for m in page["members"]}
    assert (medical[baby]["owed_fen"], medical[baby]["rule"]) == (MEDICAL, "medical.newborn")
    assert medical[baby]["benefit_start"] == "2020-02-01"
    assert medical[family.person_ids[0]]["owed_fen"] == LATE_MEDICAL

    r = _order(shop, family, key="newborn", insurances=("medical",))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["amount_fen"] == 2 * LATE_MEDICAL + MEDICAL
    items = {i["person_id"]: i for i in order["items"]}
    assert (items[baby]["amount_fen"], items[baby]["rule"]) == (26000, "medical.newborn")
    assert items[baby]["benefit_start"] == "2020-02-01"
    assert items[family.person_ids[0]]["benefit_start"] == "2020-04-14"  # late: +30 days

    _pay(sandbox, "wechat", order["out_trade_no"])
    paid = _wait(lambda: (o := _get(shop, family, order["out_trade_no"]))["status"] == "paid" and o)
    starts = {i["person_id"]: i["contribution"]["benefit_start"] for i in paid["items"]}
    assert starts[baby] == "2020-02-01"
    records = {r["amount_fen"]: r for r in _records(shop.app, order["out_trade_no"])}
    assert records[MEDICAL]["benefit_start"] == "2020-02-01" and records[MEDICAL]["year"] == 2020


def _approve_pension(app: Any, person_id: int, years: list[dict[str, int]]) -> list[int]:
    r = app.test_client().post(
        "/api/v1/backpay/approvals",
        json={
            "person_id": person_id,
            "insurance": "pension",
            "pension_tier": 500,
            "years": years,
            "document_no": "山人社补〔2019〕7号",
            "expires_on": "2019-12-31",
        },
        headers={"Authorization": f"Bearer {_staff_token(app, 'hr_bureau')}"},
    )
    assert r.status_code == 201, r.get_json()
    return [a["id"] for a in r.get_json()["approvals"]]


def test_a_back_payment_is_paid_online_with_the_years_items_once(shop, sandbox, today) -> None:
    family = _family(shop.app, [Member(date(1965, 3, 9), pension_tier=300)])
    person = family.person_ids[0]
    ids = _approve_pension(
        shop.app, person, [{"year": 2017, "amount_fen": 50000}, {"year": 2018, "amount_fen": 61234}]
    )
    page = _premiums(shop, family)
    assert [(b["year"], b["amount_fen"]) for b in page["backpay"]] == [(2017, 50000), (2018, 61234)]

    r = _order(shop, family, key="bp-1", insurances=("medical", "pension", "backpay"))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["amount_fen"] == MEDICAL + 30000 + 50000 + 61234
    kinds = sorted((i["year"], i["insurance"], i["kind"]) for i in order["items"])
    assert kinds == [
        (2017, "pension", "backpay"),
        (2018, "pension", "backpay"),
        (2020, "medical", "premium"),
        (2020, "pension", "premium"),
    ]
    _pay(sandbox, "wechat", order["out_trade_no"])
    _wait(lambda: _get(shop, family, order["out_trade_no"])["status"] == "paid")

    booked = _contributions(shop.app, order["out_trade_no"])
    assert (person, "pension", 2017, "backpay", 50000, "2017-01-01") in booked
    assert (person, "pension", 2018, "backpay", 61234, "2018-01-01") in booked
    records = {(r["year"], r["insurance"]): r for r in _records(shop.app, order["out_trade_no"])}
    assert set(records) == {
        (2017, "pension"),
        (2018, "pension"),
        (2020, "medical"),
        (2020, "pension"),
    }
    assert records[(2018, "pension")]["amount_fen"] == 61234
    assert records[(2018, "pension")]["late"] is True  # 补缴/逾期 on the record
    assert records[(2020, "pension")]["late"] is False
    db = shop.app.extensions["database"]
    with shop.app.app_context():
        approvals = (
            db.session().scalars(select(BackpayApproval).where(BackpayApproval.id.in_(ids))).all()
        )
        assert {a.status for a in approvals} == {"paid"}
        assert all(a.contribution_id is not None for a in approvals)
        db.session.remove()

    # Paid once: nothing left to order, and a paid approval cannot be withdrawn.
    assert _premiums(shop, family)["backpay"] == []
    again = _order(shop, family, key="bp-2", insurances=("backpay",))
    assert (again.status_code, again.json()["code"]) == (409, "nothing_owed")
    w = shop.app.test_client().post(
        f"/api/v1/backpay/approvals/{ids[0]}/withdraw",
        json={"reason": "试图撤销"},
        headers={"Authorization": f"Bearer {_staff_token(shop.app, 'hr_bureau')}"},
    )
    assert (w.status_code, w.get_json()["code"]) == (409, "backpay_paid")


def test_a_back_payment_withdrawn_after_ordering_is_refunded_not_booked(
    shop, sandbox, today
) -> None:
    family = _family(shop.app, [Member(date(1966, 1, 2))])
    (approval,) = _approve_pension(
        shop.app, family.person_ids[0], [{"year": 2018, "amount_fen": 60000}]
    )
    r = _order(shop, family, key="bp-alone", insurances=("backpay",))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["amount_fen"] == 60000
    w = shop.app.test_client().post(
        f"/api/v1/backpay/approvals/{approval}/withdraw",
        json={"reason": "决定撤销"},
        headers={"Authorization": f"Bearer {_staff_token(shop.app, 'hr_bureau')}"},
    )
    assert w.status_code == 200, w.get_json()
    _pay(sandbox, "wechat", order["out_trade_no"])
    done = _wait(lambda: (o := _get(shop, family, order["out_trade_no"]))["status"] != "open" and o)
    assert done["status"] in ("duplicate", "refunded")
    assert _contributions(shop.app, order["out_trade_no"]) == []
    assert [r["amount_fen"] for r in done["refunds"]] == [60000]


def test_a_refunded_back_payment_frees_its_year_for_a_new_approval(shop, sandbox, today) -> None:
    family = _family(shop.app, [Member(date(1967, 6, 6), pension_tier=300)])
    person = family.person_ids[0]
    (approval,) = _approve_pension(shop.app, person, [{"year": 2018, "amount_fen": 60000}])
    order = _order(shop, family, key="bp-r", insurances=("pension", "backpay")).json()
    _pay(sandbox, "wechat", order["out_trade_no"])
    _wait(lambda: _get(shop, family, order["out_trade_no"])["status"] == "paid")
    r = requests.post(
        shop.url + "/api/v1/finance/refunds",
        json={
            "out_trade_no": order["out_trade_no"],
            "items": [{"person_id": person, "insurance": "pension", "year": 2018}],
            "reason": "other",
            "note": "补缴核定有误",
        },
        headers={"Authorization": f"Bearer {_staff_token(shop.app)}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    assert r.json()["amount_fen"] == 60000  # the 2018 back-payment, not the 2020 premium
    done = _wait(
        lambda: (
            (o := _get(shop, family, order["out_trade_no"]))["status"] == "partially_refunded" and o
        )
    )
    by_year = {i["year"]: i["contribution"]["status"] for i in done["items"]}
    assert by_year == {2018: "reversed", 2020: "paid"}
    db = shop.app.extensions["database"]
    with shop.app.app_context():
        assert db.session().get(BackpayApproval, approval).status == "reversed"
        db.session.remove()
    _approve_pension(shop.app, person, [{"year": 2018, "amount_fen": 58000}])
