"""The stateless quote of a newborn (DOMAIN.md "Newborns"): the personal standard, the cover
start and the birth year owed at the counter, in a body its schema reproduces exactly."""

from __future__ import annotations

from datetime import date

from flask import Flask

from api.households.schemas import QuoteResponseSchema
from tests.households.household_factories import id_number


def test_a_newborn_across_the_new_year_is_quoted_260_with_the_birth_year_named(
    app: Flask,
) -> None:
    r = app.test_client().post(
        "/api/v1/premiums/quote",
        json={
            "year": 2020,
            "paid_on": "2020-01-20",
            "members": [
                {"id_number": id_number(date(1990, 5, 1))},
                {"id_number": id_number(date(2019, 12, 25), seq=5)},
            ],
        },
    )
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    adult, baby = (m["medical"] for m in body["members"])
    assert (adult["owed_fen"], adult["rule"], adult["birth_year"]) == (81000, "medical.late", None)
    assert (baby["owed_fen"], baby["rule"], baby["benefit_start"]) == (
        26000,
        "medical.newborn",
        "2020-01-01",
    )
    assert baby["rule_label"].startswith("新生儿出生90日内参保")
    assert baby["birth_year"]["year"] == 2019 and baby["birth_year"]["payable_online"] is False
    assert baby["birth_year"]["owed_fen"] is None
    assert body["totals"]["medical_owed_fen"] == 81000 + 26000  # nothing invented for 2019
    schema = QuoteResponseSchema()
    assert schema.dump(schema.load(body)) == body
