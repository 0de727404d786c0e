"""The demo district: the plan's towns, villages and targets, and valid synthetic residents."""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.households.demo import generate_roster, load_demo
from api.households.district import TOTALS, TOWNS, ensure_district, village_specs
from api.households.models import Household, Person, Town, Village
from api.policy.idnumber import normalize_id_number

TODAY = date(2019, 11, 5)


def test_district_table_matches_the_plan_totals() -> None:
    assert len(TOWNS) == 10
    assert sum(t.villages for t in TOWNS) == TOTALS["villages"]
    for key in ("target_pension_persons", "target_pension_new_persons", "target_medical_persons"):
        assert sum(getattr(t, key) for t in TOWNS) == TOTALS[key]
    assert sum(t.target_medical_amount_yuan for t in TOWNS) == TOTALS["target_medical_amount_yuan"]
    for town in TOWNS:  # the plan's medical amount is persons × 260 yuan exactly
        assert town.target_medical_amount_yuan == town.target_medical_persons * 260
    codes = [v.code for t in TOWNS for v in village_specs(t)]
    assert len(set(codes)) == 280
    assert all(c.startswith("370406") and len(c) == 12 for c in codes)
    assert village_specs(TOWNS[3]) == village_specs(TOWNS[3])  # deterministic


def test_demo_load_creates_the_plans_district(session: Session) -> None:
    report = load_demo(session, scale=0.002, seed=7, today=TODAY)

    towns = {t.name: t for t in session.scalars(select(Town))}
    assert len(towns) == 10
    assert session.scalar(select(func.count()).select_from(Village)) == 280
    shancheng = towns["山城街道办"]
    assert (
        shancheng.code,
        shancheng.target_pension_persons,
        shancheng.target_pension_new_persons,
        shancheng.target_medical_persons,
        shancheng.target_medical_amount_fen,
    ) == ("370406001", 17800, 665, 83825, 2_179_450_000)
    villages_per_town = Counter(
        session.execute(select(Town.name).join(Village, Village.town_id == Town.id)).scalars()
    )
    assert villages_per_town == {t.name: t.villages for t in TOWNS}

    expected = sum(round(t.target_medical_persons * 0.002) for t in TOWNS)
    assert report.created == expected and not report.errors
    ids = session.scalars(select(Person.id_number)).all()
    assert len(ids) == expected == len(set(ids))
    assert all(normalize_id_number(i) == i and i.startswith("370406") for i in ids)
    assert session.scalar(select(func.count()).select_from(Household)) == report.households_created
    per_town = dict(
        session.execute(
            select(Town.name, func.count(Person.id))
            .join(Village, Village.town_id == Town.id)
            .join(Household, Household.village_id == Village.id)
            .join(Person, Person.household_id == Household.id)
            .group_by(Town.name)
        ).all()
    )
    assert per_town == {t.name: round(t.target_medical_persons * 0.002) for t in TOWNS}

    # Idempotent district, same seed: a second load changes nothing.
    again = load_demo(session, scale=0.002, seed=7, today=TODAY)
    assert (again.created, again.updated, again.unchanged) == (0, 0, expected)


def test_demo_population_looks_like_a_rural_district() -> None:
    rows = list(generate_roster(0.02, seed=42, today=TODAY))
    assert len(rows) == sum(round(t.target_medical_persons * 0.02) for t in TOWNS)
    ages = [2020 - int(r.id_number[6:10]) for r in rows]
    share = lambda pred: sum(1 for a in ages if pred(a)) / len(ages)  # noqa: E731
    assert share(lambda a: 45 <= a <= 70) > 0.35  # old-heavy
    assert share(lambda a: a < 16) < share(lambda a: 45 <= a <= 59)  # fewer children
    categories = Counter(c for r in rows for c in r.categories.split(";") if c)
    n = len(rows)
    assert 0.01 < categories["dibao"] / n < 0.03
    assert 0.005 < categories["tekun"] / n < 0.02
    assert 0.01 < categories["disabled_severe"] / n < 0.03
    assert 0.02 < (categories["poverty_registered"] + categories["poverty_lifted"]) / n < 0.045
    assert 0.03 < sum(r.employee_medical == "1" for r in rows) / n < 0.08
    students = [r for r in rows if r.student == "1"]
    assert students and all(16 <= 2020 - int(r.id_number[6:10]) <= 23 for r in students)
    deaths = [date.fromisoformat(r.deceased_on) for r in rows if r.deceased_on]
    assert deaths and max(deaths) < TODAY
    sizes = Counter(Counter((r.town, r.village, r.household_no) for r in rows).values())
    assert set(sizes) <= set(range(1, 7))
    assert rows == list(generate_roster(0.02, seed=42, today=TODAY))  # same seed, same district


def test_ensure_district_is_idempotent(session: Session) -> None:
    assert ensure_district(session) == (10, 280)
    assert ensure_district(session) == (0, 0)
