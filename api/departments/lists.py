"""Department lists 部门名单: upload → preview (stored) → apply; late lists need finance.

Preview (`upload_list`): every line of the file gets one outcome — `added`, `unchanged`,
`not_in_roster`, `name_mismatch`, `bad_id`, `bad_row` (unknown or another department's
category, a bad date, a repeated person), `age_mismatch` (卫健) — with its line number, and the
persons the department lists now under the upload's keys but the file no longer names are
`removed`. The preview is stored (lines with encrypted ID number and name) and applied only
when confirmed by its id. `name_mismatch`, `bad_id` and `bad_row` block the apply: a list with
a wrong line would otherwise silently drop that person.

The upload covers the keys named in its rows (or those the caller names, to empty a category):
applying it replaces the department's previous list for exactly those keys. 公安's events
(death, hukou_cancelled) are never "removed" by a later file: a death is a fact.

Apply (`apply_upload`): a conditional status move (preview → applied) makes a second apply of
the same upload change nothing; the department's version row is locked first, so two uploads
of one department are applied one after the other and the second finds the first's state.
The diff is computed again at apply time against the current list (the preview may be old).
Applied after the 11-26 deadline (policy `department_list_deadline`, Beijing day from
`api.clock`) the upload waits in `awaiting_approval` until finance (another person) approves
it (`approve_upload`); only then does it take effect.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from api.audit.service import record as audit
from api.db import utcnow
from api.departments import effects
from api.departments.codes import (
    AGE_BANDS,
    DEPARTMENTS,
    KEY_ALIASES,
    KEY_LABELS,
    department_of_key,
)
from api.departments.files import read_list
from api.departments.models import (
    BLOCKING,
    CategoryChange,
    DepartmentListVersion,
    DepartmentUpload,
    LineKind,
    ListEntry,
    UploadLine,
    UploadStatus,
)
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.households import categories as people
from api.policy import Policy, load_policy
from api.policy.errors import UnknownYear
from api.policy.idnumber import InvalidIdNumber, age_on, normalize_id_number

KEEP_PER_KIND = 500  # lines listed per kind in an answer; the rest are counted
KINDS = frozenset(k.value for k in LineKind)


def policy_of(year: int) -> Policy:
    try:
        return load_policy(year)
    except UnknownYear as exc:
        raise InvalidInput(f"{year} 年度缴费政策尚未发布", code="unknown_year") from exc


def department_of(code: str | None) -> str:
    if code not in DEPARTMENTS:
        raise Forbidden("该账号未指定有效的部门", code="no_department")
    return code


def label(policy: Policy, key: str) -> str:
    if key in policy.category_keys:
        return policy.category_label(key)
    return KEY_LABELS.get(key, key)


@dataclass
class _Line:
    line: int | None
    kind: str
    key: str = ""
    person_id: int | None = None
    id_number: str = ""
    name: str = ""
    effective_on: date | None = None
    document_no: str = ""
    message: str = ""


def _years_before(day: date, years: int) -> date:
    """The same day `years` earlier (29 February → 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _parse_date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def upload_list(
    session: Session,
    *,
    department: str,
    year: int,
    file_name: str,
    data: bytes,
    actor: str,
    keys: list[str] | None = None,
) -> DepartmentUpload:
    """Read, check and store the preview of a department list (nothing else changes)."""
    dept = DEPARTMENTS[department_of(department)]
    policy = policy_of(year)
    rows = read_list(file_name, data)
    for key in keys or []:
        if key not in dept.keys:
            raise Forbidden(f"本部门不能上报“{key}”", code="foreign_category")
    lines: list[_Line] = []
    good: list[tuple[_Line, str]] = []
    seen: set[tuple[str, str]] = set()
    aliases = {**KEY_ALIASES, **{c.label: c.key for c in policy.categories}}
    for row in rows:
        key = aliases.get(row.category, row.category)
        row = replace(row, category=key)
        ln = _Line(row.line, LineKind.BAD_ROW, key=key, name=row.name)
        ln.id_number = row.id_number
        ln.document_no = row.document_no[:64]
        lines.append(ln)
        try:
            number = normalize_id_number(row.id_number)
        except InvalidIdNumber as exc:
            ln.kind, ln.message = LineKind.BAD_ID, f"身份证号码有误：{exc}"[:200]
            continue
        ln.id_number = number
        owner = department_of_key(row.category)
        if owner is None:
            ln.message = f"未知的类别“{row.category}”"[:200]
            continue
        if owner != dept.code:
            ln.message = (
                f"“{label(policy, row.category)}”由{DEPARTMENTS[owner].name}上报，本部门不能上报"
            )
            continue
        if not row.name.strip():
            ln.message = "姓名为空"
            continue
        if row.effective_on:
            ln.effective_on = _parse_date(row.effective_on)
            if ln.effective_on is None:
                ln.message = "生效日期应为 YYYY-MM-DD"
                continue
        elif dept.kind == "events":
            ln.message = "缺少日期（死亡或注销日期）"
            continue
        if (number, row.category) in seen:
            ln.message = "同一人同一类别重复出现"
            continue
        seen.add((number, row.category))
        good.append((ln, number))
    covered = sorted(set(keys or []) | {ln.key for ln, _ in good})
    found = people.persons_by_id_number(session, (n for _, n in good))
    current = _current(session, department=dept.code, keys=covered)
    listed: set[tuple[int, str]] = set()
    for ln, number in good:
        person = found.get(number)
        if person is None:
            ln.kind, ln.message = LineKind.NOT_IN_ROSTER, "参保名册中没有此人"
            continue
        ln.person_id = person.id
        if person.name != ln.name.strip():
            ln.kind, ln.message = LineKind.NAME_MISMATCH, "姓名与参保名册不一致"
            continue
        if ln.key in AGE_BANDS:
            low, high = AGE_BANDS[ln.key]
            age = age_on(person.birth_date, policy.age_reference_date)
            if age < low or (high is not None and age >= high):
                ln.kind = LineKind.AGE_MISMATCH
                ln.message = f"按身份证号计算年龄为 {age} 周岁，不在该年龄段"
                continue
        listed.add((person.id, ln.key))
        if ln.key == "death":
            same = person.deceased_on == ln.effective_on
        else:
            same = (person.id, ln.key) in current
        ln.kind = LineKind.UNCHANGED if same else LineKind.ADDED
    if dept.kind != "events":
        who = people.persons_by_id(session, [pid for pid, _ in current])
        for (pid, key), entry in sorted(current.items()):
            if (pid, key) in listed:
                continue
            p = who[pid]
            lines.append(
                _Line(
                    None,
                    LineKind.REMOVED,
                    key=key,
                    person_id=pid,
                    id_number=p.id_number,
                    name=p.name,
                    effective_on=entry.effective_on,
                    document_no=entry.document_no,
                    message="本次名单中没有此人",
                )
            )
    counts = Counter(ln.kind for ln in lines)
    extra: dict[str, int] = {}
    if dept.kind == "age":
        # The other direction of 卫健's reconciliation: persons whose ID number puts them in
        # the band but whom the list does not name (counted; the list is not the source).
        for key in covered:
            low, high = AGE_BANDS[key]
            in_band = people.count_born_between(
                session,
                after=_years_before(policy.age_reference_date, high) if high else None,
                on_or_before=_years_before(policy.age_reference_date, low),
            )
            named = sum(1 for pid, k in listed if k == key)
            extra[f"{key}_in_band_not_listed"] = max(0, in_band - named)
    upload = DepartmentUpload(
        department=dept.code,
        year=year,
        keys=covered,
        file_name=file_name[:200],
        sha256=hashlib.sha256(data).hexdigest(),
        status=UploadStatus.PREVIEW,
        counts={**{k.value: counts.get(k.value, 0) for k in LineKind}, **extra},
        late=False,
        uploaded_by=actor,
        uploaded_at=utcnow(),
    )
    upload.lines = [
        UploadLine(
            line=ln.line,
            kind=str(ln.kind),
            key=ln.key[:32],
            person_id=ln.person_id,
            id_number=ln.id_number[:64],
            name=ln.name[:64],
            effective_on=ln.effective_on,
            document_no=ln.document_no,
            message=ln.message[:200],
        )
        for ln in lines
    ]
    session.add(upload)
    session.flush()
    audit(
        session,
        actor=actor,
        action="departments.upload",
        subject=f"department-upload:{upload.id}",
        detail={"department": dept.code, "keys": covered, "counts": upload.counts},
    )
    return upload


def _current(session: Session, *, department: str, keys: list[str]) -> dict[tuple[int, str], Any]:
    rows = session.scalars(
        select(ListEntry).where(ListEntry.department == department, ListEntry.key.in_(keys))
    ).all()
    return {(e.person_id, e.key): e for e in rows}


def get_upload(session: Session, *, upload_id: int, department: str | None) -> DepartmentUpload:
    """The upload; a department sees only its own (another's is 404: not revealed)."""
    upload = session.get(DepartmentUpload, upload_id)
    if upload is None or (department is not None and upload.department != department):
        raise NotFound("未找到该名单", code="upload_not_found")
    return upload


def upload_view(
    session: Session, upload: DepartmentUpload, *, kind: str | None = None
) -> dict[str, Any]:
    """The stored preview with masked lines: up to `KEEP_PER_KIND` per kind, the rest counted."""
    from api.policy.idnumber import mask_id_number, mask_name

    shown: Counter[str] = Counter()
    lines = []
    query = (
        select(UploadLine)
        .where(UploadLine.upload_id == upload.id)
        .order_by(UploadLine.line.is_(None), UploadLine.line, UploadLine.id)
    )
    if kind is not None:
        query = query.where(UploadLine.kind == kind)
    for ln in session.scalars(query):
        if shown[ln.kind] >= KEEP_PER_KIND:
            continue
        shown[ln.kind] += 1
        lines.append(
            {
                "line": ln.line,
                "kind": ln.kind,
                "category": ln.key,
                "id_number": mask_id_number(ln.id_number),
                "name": mask_name(ln.name),
                "effective_on": ln.effective_on,
                "document_no": ln.document_no,
                "message": ln.message,
            }
        )
    counts = dict(upload.counts)
    return {
        "id": upload.id,
        "department": upload.department,
        "year": upload.year,
        "categories": upload.keys,
        "file_name": upload.file_name,
        "status": upload.status,
        "late": upload.late,
        "uploaded_by": upload.uploaded_by,
        "uploaded_at": upload.uploaded_at,
        "applied_at": upload.applied_at,
        "approved_by": upload.approved_by,
        "counts": counts,
        "blocking": sum(counts.get(k.value, 0) for k in BLOCKING),
        "not_listed": {
            k: n - shown[k]
            for k, n in counts.items()
            if k in KINDS and n - shown[k] > 0 and (kind is None or k == kind)
        },
        "lines": lines,
    }


@dataclass
class ApplyResult:
    upload: DepartmentUpload
    changed: bool
    added: int = 0
    removed: int = 0
    events: int = 0
    close_order_ids: list[int] = field(default_factory=list)
    refunds: int = 0


def apply_upload(
    session: Session, *, upload_id: int, department: str, actor: str, today: date
) -> ApplyResult:
    """Confirm a preview. Before the deadline it takes effect now; after it, it waits for
    finance's approval. A second apply of the same upload changes nothing."""
    upload = get_upload(session, upload_id=upload_id, department=department_of(department))
    if upload.status != UploadStatus.PREVIEW:
        return ApplyResult(upload, changed=False)
    blocking = sum(upload.counts.get(k.value, 0) for k in BLOCKING)
    if blocking:
        raise InvalidInput(
            f"名单有 {blocking} 行错误（身份证号、姓名或类别），请改正后重新上传",
            code="preview_has_errors",
        )
    policy = policy_of(upload.year)
    late = today > policy.department_list_deadline
    target = UploadStatus.AWAITING_APPROVAL if late else UploadStatus.APPLIED
    won = session.execute(
        update(DepartmentUpload)
        .where(DepartmentUpload.id == upload.id, DepartmentUpload.status == UploadStatus.PREVIEW)
        .values(status=target, late=late, applied_by=actor, applied_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(upload)
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return ApplyResult(upload, changed=False)
    if late:
        audit(
            session,
            actor=actor,
            action="departments.apply_late",
            subject=f"department-upload:{upload.id}",
            detail={
                "department": upload.department,
                "deadline": str(policy.department_list_deadline),
            },
        )
        return ApplyResult(upload, changed=True)
    return _take_effect(session, upload, policy=policy, actor=actor)


def approve_upload(session: Session, *, upload_id: int, actor: str) -> ApplyResult:
    """Finance approves a list applied after the deadline; it then takes effect (once)."""
    upload = get_upload(session, upload_id=upload_id, department=None)
    if upload.status == UploadStatus.APPLIED:
        return ApplyResult(upload, changed=False)
    if upload.status != UploadStatus.AWAITING_APPROVAL:
        raise Conflict("该名单不在待审批状态", code="upload_not_awaiting_approval")
    if actor in (upload.uploaded_by, upload.applied_by):
        audit(
            session,
            actor=actor,
            action="departments.approve_upload",
            subject=f"department-upload:{upload.id}",
            outcome="refused",
            detail={"reason": "self_approval"},
        )
        raise Conflict("上传或提交名单的人不能审批同一名单", code="self_approval")
    won = session.execute(
        update(DepartmentUpload)
        .where(
            DepartmentUpload.id == upload.id,
            DepartmentUpload.status == UploadStatus.AWAITING_APPROVAL,
        )
        .values(status=UploadStatus.APPLIED, approved_by=actor, approved_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(upload)
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return ApplyResult(upload, changed=False)
    return _take_effect(session, upload, policy=policy_of(upload.year), actor=actor)


def _take_effect(
    session: Session, upload: DepartmentUpload, *, policy: Policy, actor: str
) -> ApplyResult:
    """Replace the department's list for the upload's keys, record the history, and run the
    effects of each change; in the caller's transaction."""
    version = session.scalar(
        update(DepartmentListVersion)
        .where(DepartmentListVersion.department == upload.department)
        .values(version=DepartmentListVersion.version + 1)
        .returning(DepartmentListVersion.version)
    )
    if version is None:  # a department code added after the migration
        session.add(DepartmentListVersion(department=upload.department, version=1))
        session.flush()
        version = 1
    upload.version = version
    result = ApplyResult(upload, changed=True)
    dept = DEPARTMENTS[upload.department]
    current = _current(session, department=dept.code, keys=list(upload.keys))
    wanted = {
        (ln.person_id, ln.key): ln
        for ln in upload.lines
        if ln.person_id is not None and ln.kind in (LineKind.ADDED, LineKind.UNCHANGED)
    }
    # Keys that lower what the person owes: an open order priced before is wrong now.
    repricing = (
        policy.medical.government_categories
        | policy.pension.tier100_categories
        | {k for k, fen in policy.medical.category_subsidy_fen if fen > 0}
    )
    became_government: list[int] = []
    for (pid, key), ln in sorted(wanted.items()):
        assert pid is not None
        if dept.kind == "events":
            if key == "death" and ln.effective_on is not None:
                if people.record_death(session, person_id=pid, died_on=ln.effective_on):
                    _history(session, upload, pid, key, "recorded", ln)
                    result.events += 1
                    outcome = effects.death(
                        session, upload=upload, person_id=pid, died_on=ln.effective_on, actor=actor
                    )
                    result.close_order_ids += outcome.close_order_ids
                    result.refunds += outcome.refunds
            elif (pid, key) not in current:
                _history(session, upload, pid, key, "recorded", ln)
                result.events += 1
            if (pid, key) not in current:
                session.add(_entry(upload, pid, key, ln))
            continue
        if (pid, key) in current:
            continue
        session.add(_entry(upload, pid, key, ln))
        _history(session, upload, pid, key, "added", ln)
        result.added += 1
        if dept.kind == "list":
            people.assert_category(
                session, person_id=pid, category=key, source=dept.code, upload_id=upload.id
            )
            if key in repricing:
                became_government.append(pid)
    if dept.kind != "events":
        for (pid, key), entry in sorted(current.items()):
            if (pid, key) in wanted:
                continue
            session.execute(delete(ListEntry).where(ListEntry.id == entry.id))
            _history(session, upload, pid, key, "removed", None)
            result.removed += 1
            if dept.kind == "list":
                people.withdraw_category(session, person_id=pid, category=key, source=dept.code)
    session.flush()
    # Categories and deaths were written with Core statements: loaded persons are stale.
    session.expire_all()
    if became_government:
        result.close_order_ids += effects.became_government(
            session, upload=upload, person_ids=sorted(set(became_government)), actor=actor
        )
    result.close_order_ids = sorted(set(result.close_order_ids))
    audit(
        session,
        actor=actor,
        action="departments.apply",
        subject=f"department-upload:{upload.id}",
        detail={
            "department": upload.department,
            "version": version,
            "added": result.added,
            "removed": result.removed,
            "events": result.events,
            "orders_to_close": len(result.close_order_ids),
            "refunds": result.refunds,
        },
    )
    return result


def _entry(upload: DepartmentUpload, pid: int, key: str, ln: UploadLine) -> ListEntry:
    return ListEntry(
        department=upload.department,
        key=key,
        person_id=pid,
        upload_id=upload.id,
        effective_on=ln.effective_on,
        document_no=ln.document_no,
    )


def _history(
    session: Session,
    upload: DepartmentUpload,
    pid: int,
    key: str,
    change: str,
    ln: UploadLine | None,
) -> None:
    session.add(
        CategoryChange(
            person_id=pid,
            department=upload.department,
            key=key,
            change=change,
            upload_id=upload.id,
            effective_on=ln.effective_on if ln else None,
            document_no=ln.document_no if ln else "",
            at=utcnow(),
        )
    )


def list_uploads(
    session: Session, *, department: str | None, status: str | None
) -> list[DepartmentUpload]:
    query = select(DepartmentUpload).order_by(DepartmentUpload.id.desc()).limit(200)
    if department is not None:
        query = query.where(DepartmentUpload.department == department)
    if status is not None:
        query = query.where(DepartmentUpload.status == status)
    return list(session.scalars(query))


def history_count(session: Session, *, person_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(CategoryChange)
            .where(CategoryChange.person_id == person_id)
        )
        or 0
    )
