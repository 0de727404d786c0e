"""`POST /api/v1/households/bind`: proof by ID number + name, no oracle, throttling, audit."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from api.audit.models import AuditEvent
from api.auth.models import BindAttempt, HouseholdBinding
from api.policy.idnumber import mask_id_number
from tests.auth.login_fakes import use_settings
from tests.households.household_factories import (
    bearer,
    id_number,
    make_household,
    make_resident,
    member,
)

BIND = "/api/v1/households/bind"


def _family(app: Flask) -> dict[str, Any]:
    session = app.extensions["database"].session()
    household = make_household(
        session,
        members=[
            member("王小明", birth="1979-06-03", id_number="370406197906030317"),
            member("李秀英", age=38, sex="F"),
            member("王明", age=8),
            member("王老汉", age=80, deceased_on=date(2019, 9, 1)),
        ],
    )
    account = make_resident(session)
    other = make_resident(session)
    session.commit()
    people = {p.name: p for p in household.members}
    return {
        "household": household,
        "people": people,
        "account": account.id,
        "other": other.id,
        "ids": {name: p.id_number for name, p in people.items()},
        "person_ids": {name: p.id for name, p in people.items()},
    }


def test_bind_returns_household_with_others_masked(app: Flask) -> None:
    with app.app_context():
        fam = _family(app)
    client = app.test_client()
    response = client.post(
        BIND,
        json={"id_number": "370406197906030317", "name": " 王小明 "},
        headers=bearer(app, fam["account"]),
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == fam["household"].id
    assert body["village"]["name"] and body["town"]["name"]
    by_id = {m["person_id"]: m for m in body["members"]}
    me = by_id[fam["person_ids"]["王小明"]]
    assert me == {
        "person_id": fam["person_ids"]["王小明"],
        "name": "王小明",
        "id_number": "370406197906030317",
        "is_self": True,
        "birth_year": 1979,
        "deceased": False,
    }
    wife = by_id[fam["person_ids"]["李秀英"]]
    assert wife["name"] == "李*英" and not wife["is_self"]
    assert wife["id_number"] == mask_id_number(fam["ids"]["李秀英"])
    assert wife["id_number"].startswith("370406********")
    assert by_id[fam["person_ids"]["王明"]]["name"] == "王*"
    assert "370406197906030317" not in str([m for m in body["members"] if not m["is_self"]])
    # Binding again is harmless (same answer, one binding).
    again = client.post(
        BIND,
        json={"id_number": "370406197906030317", "name": "王小明"},
        headers=bearer(app, fam["account"]),
    )
    assert again.status_code == 200
    with app.app_context():
        session = app.extensions["database"].session()
        assert session.scalar(select(func.count()).select_from(HouseholdBinding)) == 1
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "household.bind")
        ).all()
        assert [e.outcome for e in events] == ["ok", "ok"]
        assert all("370406197906030317" not in str(e.detail) for e in events)
        assert events[0].detail["id_number"] == "370406********0317"
        assert events[0].detail["name"] == "王*明"


def test_lowercase_x_is_normalised(app: Flask) -> None:
    with app.app_context():
        session = app.extensions["database"].session()
        # Find a birth/sequence whose check character is X.
        number = next(
            n for seq in range(1, 400) if (n := id_number(date(1980, 1, 2), seq=seq)).endswith("X")
        )
        make_household(session, members=[member("张三", birth="1980-01-02", id_number=number)])
        account = make_resident(session)
        session.commit()
    response = app.test_client().post(
        BIND, json={"id_number": number.lower(), "name": "张三"}, headers=bearer(app, account.id)
    )
    assert response.status_code == 200, response.get_json()


def test_wrong_name_unknown_id_and_deceased_answer_identically(app: Flask) -> None:
    with app.app_context():
        fam = _family(app)
    client = app.test_client()
    headers = bearer(app, fam["account"])
    unknown_id = id_number(date(1975, 3, 3))
    attempts = [
        {"id_number": fam["ids"]["李秀英"], "name": "李秀"},  # wrong name
        {"id_number": unknown_id, "name": "李秀英"},  # unknown person
        {"id_number": fam["ids"]["王老汉"], "name": "王老汉"},  # deceased
    ]
    responses = [client.post(BIND, json=body, headers=headers) for body in attempts]
    assert {r.status_code for r in responses} == {404}
    bodies = [r.get_json() for r in responses]
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["code"] == "bind_failed"
    assert {tuple(sorted(r.headers.keys())) for r in responses} == {
        tuple(sorted(responses[0].headers.keys()))
    }
    with app.app_context():
        session = app.extensions["database"].session()
        assert session.scalar(select(func.count()).select_from(HouseholdBinding)) == 0
        assert session.scalar(select(func.count()).select_from(BindAttempt)) == 3
        reasons = [
            e.detail["reason"]
            for e in session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "household.bind")
                .order_by(AuditEvent.id)
            )
        ]
        assert reasons == ["name_mismatch", "unknown", "deceased"]


def test_invalid_id_number_is_422_on_the_field_and_not_counted(app: Flask) -> None:
    with app.app_context():
        fam = _family(app)
    good = fam["ids"]["李秀英"]
    bad_check = good[:17] + ("0" if good[17] != "0" else "1")
    response = app.test_client().post(
        BIND, json={"id_number": bad_check, "name": "李秀英"}, headers=bearer(app, fam["account"])
    )
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"json": {"id_number": ["身份证号码校验位错误"]}}
    with app.app_context():
        session = app.extensions["database"].session()
        assert session.scalar(select(func.count()).select_from(BindAttempt)) == 0


def test_repeated_failures_are_throttled_per_account_and_address(app: Flask) -> None:
    use_settings(app, BIND_MAX_FAILURES=3, BIND_FAILURE_WINDOW_SECONDS=600)
    with app.app_context():
        fam = _family(app)
    client = app.test_client()
    mine = bearer(app, fam["account"])
    wrong = {"id_number": fam["ids"]["李秀英"], "name": "错误"}
    statuses = [client.post(BIND, json=wrong, headers=mine).status_code for _ in range(3)]
    assert statuses == [404, 404, 404]
    blocked = client.post(BIND, json=wrong, headers=mine)
    assert blocked.status_code == 429
    assert blocked.get_json()["code"] == "too_many_requests"
    retry_after = int(blocked.headers["Retry-After"])
    assert 0 < retry_after <= 600
    # Even the right pair is refused while throttled: guessing cannot continue.
    right = {"id_number": fam["ids"]["李秀英"], "name": "李秀英"}
    assert client.post(BIND, json=right, headers=mine).status_code == 429
    # Another account from the same address is not held up by this account's failures.
    ok = client.post(BIND, json=right, headers=bearer(app, fam["other"]))
    assert ok.status_code == 200
    with app.app_context():
        session = app.extensions["database"].session()
        # Throttled requests are audited but not counted as new failures.
        assert session.scalar(select(func.count()).select_from(BindAttempt)) == 3
        throttled = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "household.bind")
        ).all()
        assert sum(e.detail.get("reason") == "throttled" for e in throttled) == 2


def _residents(app: Flask, count: int) -> list[dict[str, str]]:
    with app.app_context():
        session = app.extensions["database"].session()
        accounts = [make_resident(session) for _ in range(count)]
        session.commit()
        return [bearer(app, a.id) for a in accounts]


def test_wrong_binds_by_others_on_a_shared_address_do_not_block_a_resident(app: Flask) -> None:
    """Issue 10, defect 2: five wrong binds from one address by two accounts blocked a third
    resident with the right ID number and name for 15 minutes (village Wi-Fi, carrier NAT)."""
    with app.app_context():
        fam = _family(app)
    client = app.test_client()
    guesser_a, guesser_b, resident = _residents(app, 3)
    wrong = {"id_number": fam["ids"]["李秀英"], "name": "错误"}
    for headers in (guesser_a, guesser_b, guesser_a, guesser_b, guesser_a):
        assert client.post(BIND, json=wrong, headers=headers).status_code == 404
    right = {"id_number": fam["ids"]["李秀英"], "name": "李秀英"}
    assert client.post(BIND, json=right, headers=resident).status_code == 200


def test_an_address_past_its_ceiling_pauses_only_accounts_that_failed_themselves(
    app: Flask,
) -> None:
    """Past the address's free allowance, accounts that have failed wait a growing pause (at
    most the cap, never the window); one that has not failed binds at once."""
    use_settings(
        app,
        BIND_MAX_FAILURES=3,
        BIND_FAILURE_WINDOW_SECONDS=900,
        BIND_ADDRESS_FREE_FAILURES=4,
        THROTTLE_DELAY_CAP_SECONDS=60,
    )
    with app.app_context():
        fam = _family(app)
    client = app.test_client()
    guessers = _residents(app, 2)
    wrong = {"id_number": fam["ids"]["李秀英"], "name": "错误"}
    for headers in guessers:  # 2 each: neither is locked on its own, the address is at 4
        for _ in range(2):
            assert client.post(BIND, json=wrong, headers=headers).status_code == 404
    right = {"id_number": fam["ids"]["李秀英"], "name": "李秀英"}
    paused = client.post(BIND, json=right, headers=guessers[0])
    assert paused.status_code == 429
    assert 0 < int(paused.headers["Retry-After"]) <= 60
    assert client.post(BIND, json=right, headers=bearer(app, fam["other"])).status_code == 200


def test_old_failures_leave_the_window(app: Flask) -> None:
    from datetime import timedelta

    from api import clock

    use_settings(app, BIND_MAX_FAILURES=2, BIND_FAILURE_WINDOW_SECONDS=60)
    with app.app_context():
        fam = _family(app)
        session = app.extensions["database"].session()
        old = clock.now() - timedelta(seconds=120)  # the clock the throttle reads
        for _ in range(5):
            session.add(BindAttempt(account_id=fam["account"], remote_addr="127.0.0.1", at=old))
        session.commit()
    right = {"id_number": fam["ids"]["李秀英"], "name": "李秀英"}
    response = app.test_client().post(BIND, json=right, headers=bearer(app, fam["account"]))
    assert response.status_code == 200


def test_bind_requires_a_resident_token(app: Flask) -> None:
    client = app.test_client()
    body = {"id_number": "370406197906030317", "name": "王小明"}
    assert client.post(BIND, json=body).status_code == 401
    staff_header = bearer(app, 1, kind="staff")
    assert client.post(BIND, json=body, headers=staff_header).status_code == 401
