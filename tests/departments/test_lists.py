"""Department lists: the preview with every kind of line, apply and re-apply, the 11-26
deadline approval, and a department refused another's categories, uploads and batches."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from api.audit.models import AuditEvent
from api.departments.models import CategoryChange, ListEntry
from api.errors import Conflict
from api.households.models import PersonCategory
from tests.departments.helpers import (
    LATE,
    ON_TIME,
    count,
    csv_of,
    row,
    staff,
    upload,
    upload_and_apply,
)
from tests.payments.factories import Member, id_number, make_household

BAD_ID = "370406197001010010"  # wrong check character


def _people(session: Any) -> Any:
    return make_household(
        session,
        [
            Member(date(1970, 4, 1), name="王大明"),
            Member(date(1972, 5, 1), name="李秀兰"),
            Member(date(1975, 6, 1), name="张小红"),
            Member(date(1980, 7, 1), name="赵刚强"),
        ],
    )


def test_preview_shows_every_kind_of_line_and_apply_is_blocked(
    app: Flask, session: Any, client: Any
) -> None:
    app.config["APP_TODAY"] = ON_TIME
    h = _people(session)
    a, b, c, d = h.members
    mz = staff(app, session, "department", "mz", "civil_affairs")
    session.commit()
    first = upload_and_apply(client, mz, csv_of(row(b, "dibao"), row(c, "dibao")))
    assert (first["added"], first["removed"]) == (2, 0)

    stranger = id_number(date(1966, 9, 14), 913)
    data = csv_of(
        row(a, "dibao"),  # line 2: added
        row(b, "dibao"),  # line 3: unchanged
        row(d, "dibao", name="赵刚"),  # line 4: name mismatch
        (stranger, "陌生人", "dibao", "2019-10-15", ""),  # line 5: not in the roster
        (BAD_ID, "错号码", "dibao", "2019-10-15", ""),  # line 6: bad ID number
        row(d, "disabled_severe"),  # line 7: 残联's category
        row(a, "tekun", day="2019-13-01"),  # line 8: bad date
        row(a, "dibao"),  # line 9: the same person and category again
    )
    r = upload(client, mz, data)
    assert r.status_code == 201, r.get_json()
    preview = r.get_json()
    kinds = {(ln["line"], ln["kind"]) for ln in preview["lines"]}
    assert kinds == {
        (2, "added"),
        (3, "unchanged"),
        (4, "name_mismatch"),
        (5, "not_in_roster"),
        (6, "bad_id"),
        (7, "bad_row"),
        (8, "bad_row"),
        (9, "bad_row"),
        (None, "removed"),  # c is no longer listed
    }
    assert preview["status"] == "preview" and preview["blocking"] == 5
    assert preview["counts"]["removed"] == 1 and preview["counts"]["added"] == 1
    body = json.dumps(preview, ensure_ascii=False)
    # Masked everywhere: no full ID number or name of anyone.
    for person in (a, b, c, d):
        assert person.id_number not in body and person.name not in body
    assert "王*明" in body and f"{a.id_number[:6]}********{a.id_number[-4:]}" in body
    assert "残联" in next(ln["message"] for ln in preview["lines"] if ln["line"] == 7)

    # The stored preview is served again by id, and may be filtered by kind.
    again = client.get(f"/api/v1/departments/uploads/{preview['id']}?kind=bad_row", headers=mz)
    assert [ln["line"] for ln in again.get_json()["lines"]] == [7, 8, 9]

    refused = client.post(f"/api/v1/departments/uploads/{preview['id']}/apply", headers=mz)
    assert refused.status_code == 422
    assert refused.get_json()["code"] == "preview_has_errors"
    assert count(session, ListEntry) == 2  # nothing changed


def test_apply_then_reapply_changes_nothing(app: Flask, session: Any, client: Any) -> None:
    app.config["APP_TODAY"] = ON_TIME
    h = _people(session)
    a, b, c, _ = h.members
    mz = staff(app, session, "department", "mz", "civil_affairs")
    session.commit()
    r = upload(client, mz, csv_of(row(a, "dibao"), row(b, "tekun")))
    upload_id = r.get_json()["id"]
    applied = client.post(f"/api/v1/departments/uploads/{upload_id}/apply", headers=mz).get_json()
    assert (applied["changed"], applied["added"], applied["status"]) == (True, 2, "applied")
    held = session.execute(
        select(PersonCategory.person_id, PersonCategory.category, PersonCategory.source,
               PersonCategory.upload_id).order_by(PersonCategory.person_id)
    ).all()  # fmt: skip
    assert [tuple(x) for x in held] == [
        (a.id, "dibao", "civil_affairs", upload_id),
        (b.id, "tekun", "civil_affairs", upload_id),
    ]
    history = count(session, CategoryChange)
    assert history == 2

    # The same upload confirmed again: nothing at all.
    twice = client.post(f"/api/v1/departments/uploads/{upload_id}/apply", headers=mz).get_json()
    assert twice["changed"] is False and twice["added"] == 0
    # The same list uploaded and applied again: every line unchanged, nothing written.
    same = upload_and_apply(client, mz, csv_of(row(a, "dibao"), row(b, "tekun")))
    assert (same["changed"], same["added"], same["removed"]) == (True, 0, 0)
    assert count(session, CategoryChange) == history

    # A new list for dibao only: a stays, c comes in; b's tekun is not touched (not covered).
    third = upload_and_apply(client, mz, csv_of(row(c, "dibao")))
    assert (third["added"], third["removed"]) == (1, 1)
    changes = session.execute(
        select(CategoryChange.person_id, CategoryChange.key, CategoryChange.change).order_by(
            CategoryChange.id
        )
    ).all()
    assert [tuple(x) for x in changes][2:] == [(c.id, "dibao", "added"), (a.id, "dibao", "removed")]
    assert {(x.person_id, x.category) for x in session.scalars(select(PersonCategory))} == {
        (b.id, "tekun"),
        (c.id, "dibao"),
    }
    # History is never overwritten: a's first addition is still there.
    assert count(session, CategoryChange, CategoryChange.person_id == a.id) == 2


def test_late_list_needs_finance_approval(app: Flask, session: Any, client: Any) -> None:
    app.config["APP_TODAY"] = LATE  # the day after the 11-26 deadline
    h = _people(session)
    a = h.members[0]
    mz = staff(app, session, "department", "mz", "civil_affairs")
    fin = staff(app, session, "finance", "fin")
    session.commit()
    r = upload(client, mz, csv_of(row(a, "dibao")))
    upload_id = r.get_json()["id"]
    waiting = client.post(f"/api/v1/departments/uploads/{upload_id}/apply", headers=mz).get_json()
    assert waiting["status"] == "awaiting_approval" and waiting["added"] == 0
    assert count(session, PersonCategory) == 0 and count(session, ListEntry) == 0

    # A department cannot approve; finance lists what waits and approves it.
    assert (
        client.post(f"/api/v1/departments/uploads/{upload_id}/approve", headers=mz).status_code
        == 403
    )
    pending = client.get("/api/v1/departments/uploads?status=awaiting_approval", headers=fin)
    assert [u["id"] for u in pending.get_json()["uploads"]] == [upload_id]
    approved = client.post(
        f"/api/v1/departments/uploads/{upload_id}/approve", headers=fin
    ).get_json()
    assert (approved["status"], approved["added"]) == ("applied", 1)
    assert count(session, PersonCategory, PersonCategory.person_id == a.id) == 1
    again = client.post(f"/api/v1/departments/uploads/{upload_id}/approve", headers=fin).get_json()
    assert again["changed"] is False
    assert count(session, AuditEvent, AuditEvent.action == "departments.apply") == 1


def test_late_list_refuses_self_approval(app: Flask, session: Any) -> None:
    from api.departments import lists

    app.config["APP_TODAY"] = LATE
    h = _people(session)
    row_ = row(h.members[0], "dibao")
    up = lists.upload_list(
        session, department="civil_affairs", year=2020, file_name="l.csv",
        data=csv_of(row_), actor="staff:same",
    )  # fmt: skip
    lists.apply_upload(
        session, upload_id=up.id, department="civil_affairs", actor="staff:same",
        today=date(2019, 11, 27),
    )  # fmt: skip
    with pytest.raises(Conflict) as refused:
        lists.approve_upload(session, upload_id=up.id, actor="staff:same")
    assert refused.value.code == "self_approval"


def test_department_refused_other_departments_lists_and_batches(
    app: Flask, session: Any, client: Any
) -> None:
    app.config["APP_TODAY"] = ON_TIME
    h = _people(session)
    mz = staff(app, session, "department", "mz", "civil_affairs")
    cl = staff(app, session, "department", "cl", "disabled_federation")
    fin = staff(app, session, "finance", "fin")
    session.commit()
    # 民政 may not declare 残联's category; its lines with it are bad rows.
    r = upload(
        client, mz, csv_of(row(h.members[0], "disabled_severe")), categories="disabled_severe"
    )
    assert r.status_code == 403 and r.get_json()["code"] == "foreign_category"
    mine = upload(client, mz, csv_of(row(h.members[0], "dibao"))).get_json()
    # 残联 cannot see, apply or batch-read 民政's work: 404, its existence not revealed.
    assert client.get(f"/api/v1/departments/uploads/{mine['id']}", headers=cl).status_code == 404
    assert (
        client.post(f"/api/v1/departments/uploads/{mine['id']}/apply", headers=cl).status_code
        == 404
    )
    assert client.get("/api/v1/departments/uploads", headers=cl).get_json()["uploads"] == []
    upload_and_apply(client, mz, csv_of(row(h.members[0], "dibao")))
    sub = client.post("/api/v1/departments/batch/submit", json={"year": 2020}, headers=mz)
    assert sub.status_code == 201, sub.get_json()
    batch_id = sub.get_json()["id"]
    assert client.get(f"/api/v1/departments/batches/{batch_id}", headers=cl).status_code == 404
    assert client.get(f"/api/v1/departments/batches/{batch_id}", headers=fin).status_code == 200
    # Finance-only and department-only endpoints.
    assert (
        client.post(f"/api/v1/departments/batches/{batch_id}/approve", headers=mz).status_code
        == 403
    )
    assert client.get("/api/v1/departments/batch?year=2020", headers=fin).status_code == 403
    # Errors are JSON with a stable code, never a 500: a file that is not a list.
    bad = upload(client, mz, b"\x00\x01garbage", file_name="list.pdf")
    assert bad.status_code == 422 and bad.get_json()["code"] == "unsupported_format"
    nofile = client.post(
        "/api/v1/departments/uploads",
        data={"year": "2020"},
        headers=mz,
        content_type="multipart/form-data",
    )
    assert nofile.status_code == 422 and nofile.get_json()["code"] == "file_required"
    header = upload(client, mz, "姓名\n王大明\n".encode())
    assert header.status_code == 422 and header.get_json()["code"] == "bad_header"


def test_xlsx_list_and_department_code_on_staff(app: Flask, session: Any, client: Any) -> None:
    import io

    import openpyxl

    from api.auth.service import create_staff

    app.config["APP_TODAY"] = ON_TIME
    h = _people(session)
    account = create_staff(
        session, username="cl2", role="department", password="secret123", department="残联"
    )
    assert account.department == "disabled_federation"
    cl = staff(app, session, "department", "cl", "disabled_federation")
    session.commit()
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["身份证号", "姓名", "类别", "生效日期", "文号"])
    sheet.append(
        [h.members[1].id_number, h.members[1].name, "重度残疾人", date(2019, 10, 1), "残联1号"]
    )
    buf = io.BytesIO()
    book.save(buf)
    r = upload(client, cl, buf.getvalue(), file_name="list.xlsx")
    assert r.status_code == 201, r.get_json()
    # The Chinese name of the category is read as its key.
    assert [(ln["line"], ln["kind"], ln["category"]) for ln in r.get_json()["lines"]] == [
        (2, "added", "disabled_severe")
    ]


def test_health_commission_age_lists_are_reconciled_with_the_id_number(
    app: Flask, session: Any, client: Any
) -> None:
    """卫健's 60–69 list: a listed person of that age is added, one of another age is an
    `age_mismatch` (the ID number is the source), and persons of that age it does not name
    are counted the other way."""
    app.config["APP_TODAY"] = ON_TIME
    h = make_household(
        session,
        [
            Member(date(1955, 3, 1), name="王老一"),  # 64 on 2020-01-01
            Member(date(1952, 3, 1), name="王老二"),  # 67, not listed
            Member(date(1980, 3, 1), name="王年轻"),  # 39
        ],
    )
    old, _, young = h.members
    wj = staff(app, session, "department", "wj", "health_commission")
    session.commit()
    r = upload(client, wj, csv_of(row(old, "age_60_69"), row(young, "age_60_69")))
    preview = r.get_json()
    assert [(ln["line"], ln["kind"]) for ln in preview["lines"]] == [
        (2, "added"),
        (3, "age_mismatch"),
    ]
    assert preview["counts"]["age_60_69_in_band_not_listed"] == 1
    assert preview["blocking"] == 0 and preview["not_listed"] == {}
    applied = client.post(f"/api/v1/departments/uploads/{preview['id']}/apply", headers=wj)
    assert applied.get_json()["added"] == 1
    # An age list is not a special-group category: the rules read the age from the ID.
    assert count(session, PersonCategory) == 0
    assert count(session, ListEntry, ListEntry.key == "age_60_69") == 1
