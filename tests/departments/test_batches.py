"""Per-department 代缴 batches: booked once with their tax records and paying department,
maker–checker, the district batch leaving department-paid medical alone, and the CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from api.auth.models import StaffAccount
from api.departments import batches
from api.errors import Conflict
from api.payments.models import Contribution
from api.payments.outbox import OutboxMessage
from tests.departments.helpers import MEDICAL, ON_TIME, count, csv_of, row, staff, upload_and_apply
from tests.payments.factories import Member, make_household

TIER100 = 10000


def _household(session: Any) -> Any:
    return make_household(
        session,
        [
            Member(date(1970, 4, 1), name="王大明"),  # 民政 dibao
            Member(date(1972, 5, 1), name="李秀兰"),  # 扶贫办 and 民政: 扶贫办 pays
            Member(date(1980, 6, 1), name="张小红"),  # not listed
        ],
    )


def test_each_department_books_its_own_batch_once(app: Flask, session: Any, client: Any) -> None:
    app.config["APP_TODAY"] = ON_TIME
    h = _household(session)
    a, b, _ = h.members
    mz = staff(app, session, "department", "mz", "civil_affairs")
    fp = staff(app, session, "department", "fp", "poverty_office")
    fin = staff(app, session, "finance", "fin")
    session.commit()
    upload_and_apply(client, mz, csv_of(row(a, "dibao"), row(b, "dibao")))
    upload_and_apply(client, fp, csv_of(row(b, "poverty_registered")))

    mz_draft = client.get("/api/v1/departments/batch?year=2020", headers=mz).get_json()
    fp_draft = client.get("/api/v1/departments/batch?year=2020", headers=fp).get_json()
    assert [(ln["person_id"], ln["kind"]) for ln in mz_draft["lines"]] == [(a.id, "book")]
    assert [(ln["person_id"], ln["kind"]) for ln in fp_draft["lines"]] == [(b.id, "book")]
    assert mz_draft["lines"][0]["name"] == "王*明"

    sub = client.post("/api/v1/departments/batch/submit", json={"year": 2020}, headers=mz)
    assert sub.status_code == 201
    batch_id = sub.get_json()["id"]
    # Submitted lines are not drafted again; a second submit has nothing to hold.
    empty = client.post("/api/v1/departments/batch/submit", json={"year": 2020}, headers=mz)
    assert empty.status_code == 409 and empty.get_json()["code"] == "batch_empty"
    assert count(session, Contribution) == 0  # nothing booked before finance approves

    approved = client.post(f"/api/v1/departments/batches/{batch_id}/approve", headers=fin)
    assert approved.status_code == 200
    assert approved.get_json()["status"] == "approved"
    again = client.post(f"/api/v1/departments/batches/{batch_id}/approve", headers=fin)
    assert again.status_code == 200
    rows = session.execute(
        select(Contribution.person_id, Contribution.insurance, Contribution.amount_fen,
               Contribution.government_pays_fen, Contribution.source,
               Contribution.paying_department)
    ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        (a.id, "medical", 0, MEDICAL, "government", "civil_affairs")
    ]
    records = session.scalars(select(OutboxMessage)).all()
    assert len(records) == 1
    record = records[0].record
    assert (record["event"], record["source"], record["government_pays_fen"]) == (
        "contribution.paid",
        "government",
        MEDICAL,
    )

    # 扶贫办's batch books b (paid by 扶贫办, never by 民政 too).
    fp_batch = client.post("/api/v1/departments/batch/submit", json={"year": 2020}, headers=fp)
    client.post(f"/api/v1/departments/batches/{fp_batch.get_json()['id']}/approve", headers=fin)
    payers = dict(
        session.execute(select(Contribution.person_id, Contribution.paying_department)).all()
    )
    assert payers == {a.id: "civil_affairs", b.id: "poverty_office"}
    listed = client.get("/api/v1/departments/batches?status=approved", headers=fin).get_json()
    assert len(listed["batches"]) == 2


def test_batch_approval_is_maker_checker(app: Flask, session: Any) -> None:
    app.config["APP_TODAY"] = ON_TIME
    h = _household(session)
    from api.departments import lists

    up = lists.upload_list(
        session, department="civil_affairs", year=2020, file_name="l.csv",
        data=csv_of(row(h.members[0], "dibao")), actor="staff:same",
    )  # fmt: skip
    lists.apply_upload(
        session, upload_id=up.id, department="civil_affairs", actor="staff:same",
        today=date(2019, 11, 5),
    )  # fmt: skip
    batch = batches.submit(
        session, department="civil_affairs", year=2020, on=date(2019, 11, 5), actor="staff:same"
    )
    try:
        batches.approve(session, batch_id=batch.id, actor="staff:same", on=date(2019, 11, 5))
    except Conflict as exc:
        assert exc.code == "self_approval"
    else:
        raise AssertionError("self-approval accepted")
    assert count(session, Contribution) == 0


def test_district_batch_leaves_department_paid_medical_alone(app: Flask, session: Any) -> None:
    """`flask payments government-batch` still books tier-100 pension and roster-only groups,
    but a medical premium a department's list pays is that department's batch."""
    app.config["APP_TODAY"] = ON_TIME
    h = make_household(
        session,
        [
            Member(date(1970, 4, 1), name="王大明", pension_tier=100),
            Member(date(1972, 5, 1), categories=("dibao",), name="李秀兰"),  # roster only
        ],
    )
    a, b = h.members
    from api.departments import lists

    up = lists.upload_list(
        session, department="civil_affairs", year=2020, file_name="l.csv",
        data=csv_of(row(a, "dibao")), actor="staff:mz",
    )  # fmt: skip
    lists.apply_upload(
        session, upload_id=up.id, department="civil_affairs", actor="staff:mz",
        today=date(2019, 11, 5),
    )  # fmt: skip
    session.commit()
    result = app.test_cli_runner().invoke(args=["payments", "government-batch", "--year", "2020"])
    assert result.exit_code == 0, result.output
    booked = set(session.execute(select(Contribution.person_id, Contribution.insurance)).all())
    assert booked == {(a.id, "pension"), (b.id, "medical"), (b.id, "pension")}
    refused = app.test_cli_runner().invoke(
        args=["payments", "government-batch", "--year", "2020", "--department", "civil_affairs"]
    )
    assert refused.exit_code != 0 and "flask departments batch" in refused.output


def test_cli_upload_apply_submit_approve(app: Flask, session: Any, tmp_path: Path) -> None:
    app.config["APP_TODAY"] = ON_TIME
    h = _household(session)
    a = h.members[0]
    for name, role, dept in (("mz", "department", "civil_affairs"), ("fin", "finance", None)):
        session.add(
            StaffAccount(username=name, display_name=name, password_hash="x", role=role,
                         department=dept)
        )  # fmt: skip
    session.commit()
    path = tmp_path / "dibao.csv"
    path.write_bytes(csv_of(row(a, "dibao")))
    runner = app.test_cli_runner()

    def run(*args: str) -> dict[str, Any]:
        result = runner.invoke(args=["departments", *args])
        assert result.exit_code == 0, result.output
        out: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
        return out

    applied = run("upload", "--department", "civil_affairs", "--year", "2020", str(path), "--apply")
    assert applied["preview"]["counts"]["added"] == 1 and applied["apply"]["added"] == 1
    assert a.id_number not in json.dumps(applied, ensure_ascii=False)
    draft = run("batch", "--department", "civil_affairs", "--year", "2020")
    assert [ln["kind"] for ln in draft["lines"]] == ["book"]
    batch = run("batch", "--department", "civil_affairs", "--year", "2020", "--submit", "mz")
    done = run("approve-batch", str(batch["id"]), "--as", "fin")
    assert [ln["outcome"] for ln in done["lines"]] == ["booked"]
    wrong = runner.invoke(args=["departments", "approve-batch", str(batch["id"]), "--as", "mz"])
    assert wrong.exit_code != 0
    assert count(session, Contribution, Contribution.source == "government") == 1


def test_person_moved_to_another_department_before_approval(
    app: Flask, session: Any, client: Any
) -> None:
    """民政 submits a line for b; 扶贫办 then lists b (it pays first): 民政's approval does not
    book b, and 扶贫办's next batch does — the person is booked once, by the payer."""
    app.config["APP_TODAY"] = ON_TIME
    h = _household(session)
    a, b, _ = h.members
    mz = staff(app, session, "department", "mz", "civil_affairs")
    fp = staff(app, session, "department", "fp", "poverty_office")
    fin = staff(app, session, "finance", "fin")
    session.commit()
    upload_and_apply(client, mz, csv_of(row(a, "dibao"), row(b, "dibao")))
    batch = client.post("/api/v1/departments/batch/submit", json={"year": 2020}, headers=mz)
    upload_and_apply(client, fp, csv_of(row(b, "poverty_registered")))
    # b is held by 民政's pending batch: not in 扶贫办's draft yet.
    assert client.get("/api/v1/departments/batch?year=2020", headers=fp).get_json()["lines"] == []
    done = client.post(f"/api/v1/departments/batches/{batch.get_json()['id']}/approve", headers=fin)
    outcomes = {ln["person_id"]: ln["outcome"] for ln in done.get_json()["lines"]}
    assert outcomes == {a.id: "booked", b.id: "no_longer_due"}
    draft = client.get("/api/v1/departments/batch?year=2020", headers=fp).get_json()
    assert [(ln["person_id"], ln["kind"]) for ln in draft["lines"]] == [(b.id, "book")]
    fp_batch = client.post("/api/v1/departments/batch/submit", json={"year": 2020}, headers=fp)
    client.post(f"/api/v1/departments/batches/{fp_batch.get_json()['id']}/approve", headers=fin)
    payers = dict(
        session.execute(select(Contribution.person_id, Contribution.paying_department)).all()
    )
    assert payers == {a.id: "civil_affairs", b.id: "poverty_office"}
