"""Agent collection 代办员收款 through the API, on SQLite and PostgreSQL: amounts from the
policy (equal to the premiums page), receipts numbered per village, paid with source agent at
once, online payment refused for them, void keeps the number, scope by village."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import func, select

from api.collection.models import ReceiptCounter
from api.payments.models import Contribution
from api.payments.outbox.models import OutboxMessage
from tests.collection.factories import (
    TODAY,
    collect_body,
    make_household,
    make_staff,
    make_village,
    resident_headers,
    staff_token,
)

URL = "/api/v1/collection"


@pytest.fixture
def world(app: Flask, session: Any) -> dict[str, Any]:
    app.config["APP_TODAY"] = TODAY
    village = make_village(session)
    other_village = make_village(session)
    household = make_household(session, village)
    second = make_household(session, village)
    foreign = make_household(session, other_village)
    agent = make_staff(session, "agent", village=village)
    session.commit()
    return {
        "village": village,
        "household": household,
        "second": second,
        "foreign": foreign,
        "agent": staff_token(app, agent),
        "agent_b": staff_token(app, make_staff(session, "agent", village=village)),
        "other_agent": staff_token(app, make_staff(session, "agent", village=other_village)),
        "town": staff_token(app, make_staff(session, "town", town=village.town)),
        "other_town": staff_token(app, make_staff(session, "town", town=other_village.town)),
        "resident": resident_headers(app, session, household),
    }


def _collect(client: FlaskClient, headers: dict[str, str], body: dict[str, Any], key: str) -> Any:
    return client.post(f"{URL}/receipts", json=body, headers={**headers, "Idempotency-Key": key})


def test_the_server_prices_a_collection_exactly_as_the_premiums_page(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    household = world["household"]
    # The family chooses tier 500 for both adults on the premiums page; its owed amounts …
    for person in household.members[:2]:
        chosen = client.put(
            f"/api/v1/households/{household.id}/members/{person.id}/pension-tier",
            json={"year": 2020, "tier": 500},
            headers=world["resident"],
        )
        assert chosen.status_code == 200, chosen.get_json()
    page = client.get(
        f"/api/v1/households/{household.id}/premiums?year=2020", headers=world["resident"]
    ).get_json()
    owed = page["totals"]["unpaid_fen"]
    assert owed == 3 * 26000 + 2 * 50000

    # … are what the agent sees and what the receipt charges: no amount is ever sent.
    seen = client.get(
        f"{URL}/households?household_no={household.household_no}&year=2020",
        headers=world["agent"],
    )
    assert seen.status_code == 200, seen.get_json()
    view = seen.get_json()
    assert view["totals"]["unpaid_fen"] == owed
    assert [m["medical"]["owed_fen"] for m in view["members"]] == [26000] * 3
    assert 100 not in view["members"][0]["pension"]["allowed_tiers"]
    assert all("*" in m["name"] for m in view["members"])  # staff see masked names
    created = _collect(client, world["agent"], collect_body(household), "k1")
    assert created.status_code == 201, created.get_json()
    receipt = created.get_json()
    assert receipt["amount_fen"] == owed
    assert receipt["amount_in_capitals"] == "壹仟柒佰捌拾元整"
    assert receipt["receipt_no"] == f"{world['village'].code}-2020-000001"
    assert receipt["issued_on"] == TODAY
    assert {line["name"] for line in receipt["lines"]} == {"刘*东", "邓*兰", "刘*宝"}
    assert all("*" in line["id_number"] for line in receipt["lines"])

    # Paid at once, with source agent, on the resident's page …
    page = client.get(
        f"/api/v1/households/{household.id}/premiums?year=2020", headers=world["resident"]
    ).get_json()
    for member in page["members"]:
        assert member["medical"]["status"] == "paid"
        assert member["medical"]["paid_source"] == "agent"
    assert page["members"][0]["pension"]["paid_source"] == "agent"
    assert page["totals"]["unpaid_fen"] == 0
    # … and online payment for them is refused as already paid.
    order = client.post(
        "/api/v1/payments",
        json={
            "household_id": household.id,
            "year": 2020,
            "channel": "wechat",
            "insurances": ["medical", "pension"],
        },
        headers={**world["resident"], "Idempotency-Key": "online-1"},
    )
    assert order.status_code == 409
    assert order.get_json()["code"] == "nothing_owed"


def test_an_amount_cannot_be_sent_and_a_premium_cannot_be_collected_twice(
    client: FlaskClient, world: dict[str, Any], session: Any
) -> None:
    household = world["household"]
    body = collect_body(household, tier=None)
    forged = _collect(client, world["agent"], {**body, "amount_fen": 1000}, "k0")
    assert forged.status_code == 422
    assert "amount_fen" in forged.get_json()["errors"]["json"]
    padded = {**body, "items": [{**body["items"][0], "amount_fen": 99900}, *body["items"][1:]]}
    assert _collect(client, world["agent"], padded, "k0b").status_code == 422

    assert _collect(client, world["agent"], body, "k1").status_code == 201
    again = _collect(client, world["agent_b"], body, "k2")
    assert again.status_code == 409
    assert again.get_json()["code"] == "already_paid"
    assert again.get_json()["message"]
    # One contribution per person, no tax record yet (the town's declaration will send it).
    paid = session.scalars(
        select(Contribution).where(Contribution.household_id == household.id)
    ).all()
    assert sorted(c.source for c in paid) == ["agent"] * 3
    outbox = session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.contribution_id.in_([c.id for c in paid]))
    )
    assert outbox == 0


def test_medical_is_collected_for_the_whole_household_or_not_at_all(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    household = world["household"]
    body = {
        "household_id": household.id,
        "year": 2020,
        "items": [{"person_id": household.members[0].id, "insurances": ["medical"]}],
    }
    answer = _collect(client, world["agent"], body, "k1")
    assert answer.status_code == 422
    assert answer.get_json()["code"] == "medical_household_unit"
    # Pension alone, for one person, is fine; a tier the person may not take is refused.
    alone = {
        "household_id": household.id,
        "year": 2020,
        "items": [
            {"person_id": household.members[0].id, "insurances": ["pension"], "pension_tier": 100}
        ],
    }
    refused = _collect(client, world["agent"], alone, "k2")
    assert refused.status_code == 422
    alone["items"][0]["pension_tier"] = 300
    created = _collect(client, world["agent"], alone, "k3")
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["amount_fen"] == 30000
    assert created.get_json()["amount_in_capitals"] == "叁佰元整"
    # The child owes no pension: nothing to collect.
    child = {
        "household_id": household.id,
        "year": 2020,
        "items": [{"person_id": household.members[2].id, "insurances": ["pension"]}],
    }
    nothing = _collect(client, world["agent"], child, "k4")
    assert nothing.status_code == 422 and nothing.get_json()["code"] == "nothing_owed"


def test_idempotency_key_replays_the_receipt_and_refuses_another_body(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    body = collect_body(world["household"], tier=None)
    first = _collect(client, world["agent"], body, "same")
    replay = _collect(client, world["agent"], body, "same")
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.get_json()["receipt_no"] == first.get_json()["receipt_no"]
    other = _collect(client, world["agent"], collect_body(world["second"], tier=None), "same")
    assert other.status_code == 409 and other.get_json()["code"] == "idempotency_conflict"
    missing = client.post(f"{URL}/receipts", json=body, headers=world["agent"])
    assert missing.status_code == 422
    assert missing.get_json()["code"] == "idempotency_key_required"


def test_void_reverses_the_contributions_and_keeps_the_number(
    client: FlaskClient, world: dict[str, Any], session: Any
) -> None:
    household, second = world["household"], world["second"]
    one = _collect(client, world["agent"], collect_body(household, tier=None), "k1").get_json()
    two = _collect(client, world["agent_b"], collect_body(second, tier=None), "k2").get_json()
    assert [one["receipt_no"][-6:], two["receipt_no"][-6:]] == ["000001", "000002"]

    no_reason = client.post(
        f"{URL}/receipts/{one['receipt_no']}/void", json={}, headers=world["agent"]
    )
    assert no_reason.status_code == 422
    voided = client.post(
        f"{URL}/receipts/{one['receipt_no']}/void",
        json={"reason": "档次填错，现金已退还"},
        headers=world["agent"],
    )
    assert voided.status_code == 200, voided.get_json()
    body = voided.get_json()
    assert (body["status"], body["receipt_no"], body["void_reason"]) == (
        "voided",
        one["receipt_no"],
        "档次填错，现金已退还",
    )
    assert body["voided_by"]["username"]
    statuses = session.scalars(
        select(Contribution.status).where(Contribution.household_id == household.id)
    ).all()
    assert sorted(statuses) == ["reversed"] * 3
    page = client.get(
        f"/api/v1/households/{household.id}/premiums?year=2020", headers=world["resident"]
    ).get_json()
    assert {m["medical"]["status"] for m in page["members"]} == {"unpaid"}
    twice = client.post(
        f"{URL}/receipts/{one['receipt_no']}/void",
        json={"reason": "再作废"},
        headers=world["agent"],
    )
    assert twice.status_code == 409 and twice.get_json()["code"] == "receipt_voided"

    # Collected again: a new number, never the voided one.
    three = _collect(client, world["agent"], collect_body(household, tier=None), "k3")
    assert three.status_code == 201
    assert three.get_json()["receipt_no"][-6:] == "000003"
    counter = session.get(ReceiptCounter, (world["village"].id, 2020))
    assert counter.last_seq == 3
    listed = client.get(f"{URL}/receipts?year=2020&order=asc", headers=world["agent"]).get_json()
    assert [r["status"] for r in listed["receipts"]] == ["voided", "issued", "issued"]
    assert [r["receipt_no"][-6:] for r in listed["receipts"]] == ["000001", "000002", "000003"]


def test_an_agent_of_another_village_is_refused_everywhere(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    household = world["household"]
    receipt = _collect(client, world["agent"], collect_body(household, tier=None), "k1")
    number = receipt.get_json()["receipt_no"]
    other = world["other_agent"]
    answers = [
        client.get(
            f"{URL}/households?household_no={household.household_no}&year=2020", headers=other
        ),
        _collect(client, other, collect_body(world["second"], tier=None), "k2"),
        client.get(f"{URL}/receipts/{number}", headers=other),
        client.get(f"{URL}/receipts/{number}/pdf", headers=other),
        client.post(f"{URL}/receipts/{number}/void", json={"reason": "越权作废"}, headers=other),
        client.get(f"{URL}/receipts/{number}", headers=world["other_town"]),
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.get_json()
        assert answer.get_json()["code"] in ("household_not_found", "receipt_not_found")
        assert answer.get_json()["message"]
    assert client.get(f"{URL}/receipts", headers=other).get_json()["receipts"] == []
    # The other village's household number in the agent's own request: not found either.
    foreign = world["foreign"]
    mine = client.get(
        f"{URL}/households?household_no={foreign.household_no}&year=2020", headers=world["agent"]
    )
    assert mine.status_code == 404
    # The town reads its villages' receipts, but collects nothing and voids nothing.
    town = world["town"]
    assert client.get(f"{URL}/receipts/{number}", headers=town).status_code == 200
    assert [
        r["receipt_no"] for r in client.get(f"{URL}/receipts", headers=town).get_json()["receipts"]
    ] == [number]
    assert _collect(client, town, collect_body(world["second"], tier=None), "k3").status_code == 403
    void = client.post(f"{URL}/receipts/{number}/void", json={"reason": "镇街作废"}, headers=town)
    assert void.status_code == 403
    assert client.get(f"{URL}/receipts/{number}", headers=world["resident"]).status_code == 401


def test_the_receipt_pdf_reads_back_in_chinese_with_no_full_id_number(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    household = world["household"]
    receipt = _collect(client, world["agent"], collect_body(household, tier=None), "k1").get_json()
    assert receipt["amount_in_capitals"] == "柒佰捌拾元整"
    answer = client.get(f"{URL}/receipts/{receipt['receipt_no']}/pdf", headers=world["town"])
    assert answer.status_code == 200
    assert answer.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(answer.data))
    text = "".join(page.extract_text() for page in reader.pages)
    for expected in (
        "山亭区居民社会保险基金专用收据",
        "柒佰捌拾元整",
        "刘*东",
        "邓*兰",
        receipt["receipt_no"],
    ):
        assert expected in text, expected
    for person in household.members:
        assert person.id_number not in text
        assert person.id_number.encode() not in answer.data
        assert person.name not in text
    fonts = [f.get_object() for f in reader.pages[0]["/Resources"]["/Font"].values()]
    descriptors = [f["/FontDescriptor"].get_object() for f in fonts if "/FontDescriptor" in f]
    assert any("/FontFile2" in d for d in descriptors)  # the CJK font is embedded (subset)

    client.post(
        f"{URL}/receipts/{receipt['receipt_no']}/void",
        json={"reason": "重复开具"},
        headers=world["agent"],
    )
    voided = client.get(f"{URL}/receipts/{receipt['receipt_no']}/pdf", headers=world["agent"])
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(voided.data)).pages)
    assert "作废" in text and "重复开具" in text


def test_collection_outside_the_window_is_refused(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    app.config["APP_TODAY"] = "2019-10-05"  # preparation phase: no collection yet
    answer = _collect(client, world["agent"], collect_body(world["household"], tier=None), "k1")
    assert answer.status_code == 409
    assert answer.get_json()["code"] == "collection_closed"
