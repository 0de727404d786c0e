"""`GET …/premiums` and `PUT …/pension-tier`: access, masking, statuses, tier rules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from api.audit.models import AuditEvent
from api.households import service
from api.households.models import Enrollment
from api.payments.models import Contribution
from tests.auth.login_fakes import use_settings
from tests.households.household_factories import (
    bearer,
    bind,
    make_household,
    make_resident,
    member,
)


def _setup(app: Flask) -> dict[str, Any]:
    session = app.extensions["database"].session()
    household = make_household(
        session,
        members=[
            member("王小明", age=40),
            member("李秀英", age=65, sex="F", categories=["dibao"]),
            member("王明", age=10, student=True),
            member("赵大勇", age=50, categories=["disabled_severe"]),
        ],
    )
    other = make_household(session, members=[member("孙二", age=30)])
    account = make_resident(session)
    people = {p.name: p for p in household.members}
    bind(session, account.id, people["王小明"])
    session.commit()
    return {
        "household": household.id,
        "other": other.id,
        "other_person": other.members[0].id,
        "account": account.id,
        "pid": {name: p.id for name, p in people.items()},
        "ids": {name: p.id_number for name, p in people.items()},
    }


def _premiums(app: Flask, s: dict[str, Any], household_id: int | None = None, **query: Any) -> Any:
    query.setdefault("year", 2020)
    return app.test_client().get(
        f"/api/v1/households/{household_id or s['household']}/premiums",
        query_string=query,
        headers=bearer(app, s["account"]),
    )


def _tier(app: Flask, s: dict[str, Any], name: str, body: Any, household: int | None = None) -> Any:
    person_id = s["pid"][name] if name in s["pid"] else int(name)
    return app.test_client().put(
        f"/api/v1/households/{household or s['household']}/members/{person_id}/pension-tier",
        json=body,
        headers=bearer(app, s["account"]),
    )


def test_premiums_structure_statuses_and_masking(app: Flask) -> None:
    use_settings(app, APP_TODAY="2019-11-05")
    with app.app_context():
        s = _setup(app)
    response = _premiums(app, s)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["household_id"] == s["household"] and body["year"] == 2020
    assert body["as_of"] == "2019-11-05"
    assert body["late"] is False and body["collection_open"] is True
    members = {m["person_id"]: m for m in body["members"]}
    assert [m["person_id"] for m in body["members"]] == sorted(members)

    me = members[s["pid"]["王小明"]]
    assert me["is_self"] and me["name"] == "王小明" and me["id_number"] == s["ids"]["王小明"]
    assert me["age"] == 40
    assert me["medical"]["owed_fen"] == 26000 and me["medical"]["status"] == "unpaid"
    assert me["pension"]["eligible"] and me["pension"]["tier"] is None
    assert me["pension"]["status"] == "tier_required"

    wife = members[s["pid"]["李秀英"]]
    assert wife["name"] == "李*英" and wife["id_number"].count("*") == 8
    assert wife["medical"] == {
        "due": True,
        "owed_fen": 0,
        "government_pays_fen": 26000,
        "subsidy_fen": 0,
        "late": False,
        "rule": "medical.government:dibao",
        "rule_label": "个人缴费部分由政府代缴",
        "benefit_start": "2020-01-01",
        "birth_year": None,
        "status": "government",
    }
    assert wife["pension"]["eligible"] is False and wife["pension"]["status"] == "not_due"

    child = members[s["pid"]["王明"]]
    assert child["name"] == "王*"
    assert child["pension"]["rule"] == "pension.too_young"

    disabled = members[s["pid"]["赵大勇"]]
    assert disabled["pension"]["tier"] == 100
    assert disabled["pension"]["owed_fen"] == 0
    assert disabled["pension"]["government_pays_fen"] == 10000
    assert disabled["pension"]["status"] == "government"

    assert body["totals"] == {
        "owed_fen": 52000,
        "medical_owed_fen": 52000,
        "pension_owed_fen": 0,
        "government_pays_fen": 26000 * 2 + 10000,
        "subsidy_fen": 3000,
        "unpaid_fen": 52000,
        "backpay_unpaid_fen": 0,
    }


def _contribution(
    app: Flask, s: dict[str, Any], name: str, insurance: str, *, year: int = 2020, status: str
) -> None:
    session = app.extensions["database"].session()
    session.add(
        Contribution(
            person_id=s["pid"][name],
            household_id=s["household"],
            insurance=insurance,
            year=year,
            amount_fen=1,
            government_pays_fen=0,
            subsidy_fen=0,
            source="agent",
            paid_at=datetime(2019, 11, 5, 2, tzinfo=UTC),
            late=False,
            benefit_start=date(year, 1, 1),
            status=status,
        )
    )
    session.commit()


def test_late_day_and_paid_hook(app: Flask) -> None:
    """Paid items come from contributions in status paid for the year, read in the premiums
    statement itself: a reversed contribution or one of another year does not count."""
    use_settings(app, APP_TODAY="2019-12-21")  # first late day
    with app.app_context():
        s = _setup(app)
        _contribution(app, s, "王明", "medical", status="paid")
        _contribution(app, s, "王小明", "medical", status="reversed")
        _contribution(app, s, "王小明", "medical", year=2019, status="paid")
        paid = service.paid_items(
            app.extensions["database"].session(), household_id=s["household"], year=2020
        )
    assert paid == {(s["pid"]["王明"], "medical")}  # the tier endpoint's view agrees
    body = _premiums(app, s).get_json()
    assert body["late"] is True
    members = {m["person_id"]: m for m in body["members"]}
    me = members[s["pid"]["王小明"]]
    assert me["medical"]["owed_fen"] == 26000 + 55000 and me["medical"]["late"] is True
    assert me["medical"]["rule"] == "medical.late"
    child = members[s["pid"]["王明"]]
    assert child["medical"]["status"] == "paid"
    assert me["medical"]["status"] == "unpaid"  # reversed, or paid for another year
    assert body["totals"]["unpaid_fen"] == 81000  # the child's item is paid


def test_other_or_unknown_household_is_404_alike(app: Flask) -> None:
    with app.app_context():
        s = _setup(app)
    foreign = _premiums(app, s, household_id=s["other"])
    missing = _premiums(app, s, household_id=987654)
    huge = _premiums(app, s, household_id=2**40)
    assert foreign.status_code == missing.status_code == huge.status_code == 404
    assert foreign.get_json() == missing.get_json()
    # An id past the `integer` column is refused by the path converter (api.extensions.inputs):
    # the same 404 code, and it says nothing about any household in range.
    assert foreign.get_json()["code"] == huge.get_json()["code"] == "not_found"
    tier = _tier(app, s, str(s["other_person"]), {"year": 2020, "tier": 500}, s["other"])
    assert tier.status_code == 404
    # A member of another household through my household's URL.
    cross = _tier(app, s, str(s["other_person"]), {"year": 2020, "tier": 500})
    assert cross.status_code == 404


def test_unknown_or_missing_year_is_422(app: Flask) -> None:
    with app.app_context():
        s = _setup(app)
    unknown = _premiums(app, s, year=2031)
    assert unknown.status_code == 422
    assert set(unknown.get_json()["errors"]["query"]) == {"year"}
    for bad in ("abc", "2020.5", "", "99999"):
        assert _premiums(app, s, year=bad).status_code == 422
    response = app.test_client().get(
        f"/api/v1/households/{s['household']}/premiums", headers=bearer(app, s["account"])
    )
    assert response.status_code == 422
    assert response.get_json()["errors"]["query"]["year"]


def test_tier_choice_rules_storage_and_audit(app: Flask) -> None:
    use_settings(app, APP_TODAY="2019-11-05")
    with app.app_context():
        s = _setup(app)
    refused = _tier(app, s, "王小明", {"year": 2020, "tier": 100})
    assert refused.status_code == 422
    errors = refused.get_json()["errors"]
    assert list(errors) == ["json"] and list(errors["json"]) == ["tier"]
    assert "100元档次仅限" in errors["json"]["tier"][0]
    unknown = _tier(app, s, "王小明", {"year": 2020, "tier": 700})
    assert unknown.status_code == 422 and "tier" in unknown.get_json()["errors"]["json"]
    too_old = _tier(app, s, "李秀英", {"year": 2020, "tier": 300})
    assert too_old.status_code == 422
    assert "不符合" in too_old.get_json()["errors"]["json"]["tier"][0]
    student = _tier(app, s, "王明", {"year": 2020, "tier": 300})
    assert student.status_code == 422
    bad_year = _tier(app, s, "王小明", {"year": 2031, "tier": 500})
    assert bad_year.status_code == 422 and "year" in bad_year.get_json()["errors"]["json"]

    ok = _tier(app, s, "王小明", {"year": 2020, "tier": 500})
    assert ok.status_code == 200, ok.get_json()
    me = ok.get_json()
    assert me["person_id"] == s["pid"]["王小明"] and me["is_self"]
    assert me["pension"]["tier"] == 500
    assert me["pension"]["owed_fen"] == 50000 and me["pension"]["subsidy_fen"] == 6000
    assert me["pension"]["status"] == "unpaid"

    # A bound member chooses for another member of the family; tier 100 is fine for them,
    # and a higher tier means paying the difference above the district's 100.
    for_disabled = _tier(app, s, "赵大勇", {"year": 2020, "tier": 300})
    assert for_disabled.status_code == 200
    theirs = for_disabled.get_json()
    assert theirs["name"] == "赵*勇" and not theirs["is_self"]
    assert theirs["pension"]["owed_fen"] == 20000
    assert theirs["pension"]["government_pays_fen"] == 10000
    back_to_100 = _tier(app, s, "赵大勇", {"year": 2020, "tier": 100})
    assert back_to_100.get_json()["pension"]["owed_fen"] == 0

    body = _premiums(app, s).get_json()
    pension = {m["person_id"]: m["pension"] for m in body["members"]}
    assert pension[s["pid"]["王小明"]]["tier"] == 500
    assert body["totals"]["pension_owed_fen"] == 50000
    with app.app_context():
        session = app.extensions["database"].session()
        rows = session.scalars(
            select(Enrollment).where(Enrollment.insurance == "pension", Enrollment.year == 2020)
        ).all()
        assert {(r.person_id, r.pension_tier) for r in rows} == {
            (s["pid"]["王小明"], 500),
            (s["pid"]["赵大勇"], 100),
        }
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "pension.tier").order_by(AuditEvent.id)
        ).all()
        assert [(e.detail["from"], e.detail["to"]) for e in events] == [
            (None, 500),
            (None, 300),
            (300, 100),
        ]
        assert all(e.actor == f"resident:{s['account']}" for e in events)
        assert all(s["ids"]["王小明"] not in str(e.detail) for e in events)


def test_paid_pension_tier_cannot_change(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        s = _setup(app)
    paid = {(s["pid"]["王小明"], "pension")}
    monkeypatch.setattr(service, "paid_items", lambda session, **kw: paid)
    response = _tier(app, s, "王小明", {"year": 2020, "tier": 500})
    assert response.status_code == 409
    assert response.get_json()["code"] == "already_paid"


def test_stored_tier_no_longer_allowed_reads_as_unchosen(app: Flask) -> None:
    with app.app_context():
        s = _setup(app)
        session = app.extensions["database"].session()
        session.add(
            Enrollment(
                person_id=s["pid"]["王小明"], insurance="pension", year=2020, pension_tier=100
            )
        )
        session.commit()
    response = _premiums(app, s)
    assert response.status_code == 200
    me = next(m for m in response.get_json()["members"] if m["is_self"])
    assert me["pension"]["tier"] is None and me["pension"]["status"] == "tier_required"


def test_list_bound_households(app: Flask) -> None:
    with app.app_context():
        s = _setup(app)
    response = app.test_client().get("/api/v1/households", headers=bearer(app, s["account"]))
    assert response.status_code == 200
    households = response.get_json()["households"]
    assert [h["id"] for h in households] == [s["household"]]
    assert sum(m["is_self"] for m in households[0]["members"]) == 1
