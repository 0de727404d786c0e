"""A newborn added by a roster import is quoted and priced on the newborn terms (DOMAIN.md
"Newborns"): the personal standard covered from birth, beside adults paying late."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.households.district import ensure_district
from api.households.models import Person
from api.households.quotes import quote_people
from api.households.roster import import_roster
from api.households.roster_files import read_roster_text
from api.payments.pricing import dues, facts_of
from api.policy import load_policy
from tests.households.household_factories import id_number
from tests.households.test_roster_import import HEADER, row

PAID_ON = date(2020, 3, 15)


def test_an_imported_newborn_owes_260_covered_from_birth(session: Session) -> None:
    ensure_district(session)
    baby_id = id_number(date(2020, 2, 1), seq=11)
    text = "\n".join(
        [
            HEADER,
            row(id_number=id_number(date(1990, 5, 1), seq=21), name="王大明"),
            row(id_number=baby_id, name="王小宝"),
        ]
    )
    report = import_roster(session, read_roster_text(text + "\n"), today=PAID_ON)
    assert report.written, report.errors
    baby = session.scalars(select(Person).where(Person.id_number_is(baby_id))).one()

    priced = {
        d.person_id: d
        for d in dues(
            session, household_id=baby.household_id, year=2020, on=PAID_ON, insurances=["medical"]
        )
    }
    assert (priced[baby.id].amount_fen, priced[baby.id].rule) == (26000, "medical.newborn")
    assert priced[baby.id].benefit_start == date(2020, 2, 1)
    adult = next(pid for pid in priced if pid != baby.id)
    assert (priced[adult].amount_fen, priced[adult].rule) == (81000, "medical.late")

    policy = load_policy(2020)
    page = quote_people(policy, [facts_of(baby, 2020, policy)], on=PAID_ON)
    medical = page.members[0]["medical"]
    assert (medical["owed_fen"], medical["benefit_start"], medical["birth_year"]) == (
        26000,
        "2020-02-01",
        None,
    )


def test_a_newborn_across_the_new_year_is_told_the_birth_year_is_owed_at_the_counter(
    session: Session,
) -> None:
    policy = load_policy(2020)
    ensure_district(session)
    baby_id = id_number(date(2019, 12, 25), seq=13)
    text = HEADER + "\n" + row(id_number=baby_id, name="李小宝") + "\n"
    assert import_roster(session, read_roster_text(text), today=date(2020, 1, 20)).written
    baby = session.scalars(select(Person).where(Person.id_number_is(baby_id))).one()
    page = quote_people(policy, [facts_of(baby, 2020, policy)], on=date(2020, 1, 20))
    medical = page.members[0]["medical"]
    assert medical["owed_fen"] == 26000 and medical["benefit_start"] == "2020-01-01"
    # No policy_2019.toml: named as owed at the counter, no amount invented.
    assert medical["birth_year"]["year"] == 2019
    assert medical["birth_year"]["payable_online"] is False
    assert medical["birth_year"]["owed_fen"] is None
    assert "窗口" in medical["birth_year"]["message"]
    # ... and the order charges only the 2020 premium.
    priced = dues(
        session,
        household_id=baby.household_id,
        year=2020,
        on=date(2020, 1, 20),
        insurances=["medical"],
    )
    assert [(d.year, d.amount_fen) for d in priced] == [(2020, 26000)]


def test_with_the_birth_years_policy_the_birth_year_is_an_item_of_that_year(
    session: Session,
    tmp_path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    """A 2019 policy file (here a stand-in: the 2020 file a year earlier, 250 yuan) makes the
    birth year's premium an item of 2019, priced by that file, on the quote and the order."""
    from api.policy import model

    text = (model.POLICY_DIR / "policy_2020.toml").read_text(encoding="utf-8")
    text = text.replace("2019-", "2018-").replace("2020-", "2019-")
    text = text.replace("year = 2020", "year = 2019").replace(
        "premium_fen = 26000", "premium_fen = 25000"
    )
    path = tmp_path / "policy_2019.toml"
    path.write_text(text, encoding="utf-8")
    older = model.load_policy_file(path)
    real = model.load_policy

    def load(year: int):  # type: ignore[no-untyped-def]
        return older if year == 2019 else real(year)

    monkeypatch.setattr("api.households.quotes.load_policy", load)
    monkeypatch.setattr("api.payments.pricing.load_policy", load)

    ensure_district(session)
    baby_id = id_number(date(2019, 12, 25), seq=17)
    text = HEADER + "\n" + row(id_number=baby_id, name="赵小宝") + "\n"
    assert import_roster(session, read_roster_text(text), today=date(2020, 1, 20)).written
    baby = session.scalars(select(Person).where(Person.id_number_is(baby_id))).one()
    policy = load_policy(2020)
    page = quote_people(policy, [facts_of(baby, 2020, policy)], on=date(2020, 1, 20))
    birth_year = page.members[0]["medical"]["birth_year"]
    assert (birth_year["payable_online"], birth_year["owed_fen"]) == (True, 25000)
    assert (birth_year["benefit_start"], birth_year["rule"]) == ("2019-12-25", "medical.newborn")
    priced = dues(
        session,
        household_id=baby.household_id,
        year=2020,
        on=date(2020, 1, 20),
        insurances=["medical"],
    )
    assert sorted((d.year, d.amount_fen, d.benefit_start) for d in priced) == [
        (2019, 25000, date(2019, 12, 25)),
        (2020, 26000, date(2020, 1, 1)),
    ]
