"""`flask --app wsgi departments …`: department lists and 代缴 batches from the command line
(the same service functions as the API; one transaction per command, committed here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from api.auth.models import StaffAccount
from api.clock import today
from api.db import get_db
from api.departments import batches, effects, lists
from api.departments.codes import CODES
from api.errors import DomainError

departments_cli = AppGroup("departments", help="Department lists (名单) and 代缴 batches.")
DEPARTMENT = click.option(
    "--department", required=True, type=click.Choice(CODES), help="Department code."
)


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, sort_keys=True, default=str))


def _staff(username: str, role: str, department: str | None = None) -> str:
    """The actor: an active staff account of `role` (and `department`), by username."""
    staff = (
        get_db()
        .session()
        .scalars(select(StaffAccount).where(StaffAccount.username == username))
        .one_or_none()
    )
    if (
        staff is None
        or not staff.active
        or staff.role != role
        or (department is not None and staff.department != department)
    ):
        raise click.ClickException(f"没有角色为 {role} 的有效账号 {username}")
    return f"staff:{username}"


def _apply_and_close(result: lists.ApplyResult, actor: str) -> dict[str, Any]:
    db = get_db()
    db.session().commit()
    closed = effects.close_after_commit(
        db, current_app.config["SETTINGS"], order_ids=result.close_order_ids, actor=actor
    )
    return {
        "upload_id": result.upload.id,
        "status": result.upload.status,
        "changed": result.changed,
        "added": result.added,
        "removed": result.removed,
        "events": result.events,
        "refunds": result.refunds,
        "orders_closed": closed,
    }


def _run(work: Any) -> None:
    try:
        _echo(work())
    except DomainError as exc:
        get_db().session().rollback()
        detail = f"{exc.message} [{exc.code}]"
        raise click.ClickException(detail) from exc


@departments_cli.command("upload")
@DEPARTMENT
@click.option("--year", type=int, required=True, help="Insurance year, e.g. 2020.")
@click.option("--category", "categories", multiple=True, help="Keys the list covers (repeat).")
@click.option("--apply", "apply_now", is_flag=True, help="Confirm the preview at once.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def upload_command(
    department: str, year: int, categories: tuple[str, ...], apply_now: bool, file: Path
) -> None:
    """Upload a list (CSV or XLSX): print its preview (counts, masked lines); --apply confirms."""
    actor = f"cli:{department}"

    def work() -> dict[str, Any]:
        session = get_db().session()
        row = lists.upload_list(
            session,
            department=department,
            year=year,
            file_name=file.name,
            data=file.read_bytes(),
            actor=actor,
            keys=list(categories),
        )
        view = lists.upload_view(session, row)
        session.commit()
        if not apply_now:
            return view
        result = lists.apply_upload(
            session, upload_id=row.id, department=department, actor=actor, today=today()
        )
        return {"preview": view, "apply": _apply_and_close(result, actor)}

    _run(work)


@departments_cli.command("apply")
@DEPARTMENT
@click.argument("upload_id", type=int)
def apply_command(department: str, upload_id: int) -> None:
    """Confirm a stored preview (after the deadline it waits for finance's approval)."""
    actor = f"cli:{department}"

    def work() -> dict[str, Any]:
        result = lists.apply_upload(
            get_db().session(),
            upload_id=upload_id,
            department=department,
            actor=actor,
            today=today(),
        )
        return _apply_and_close(result, actor)

    _run(work)


@departments_cli.command("approve-upload")
@click.option("--as", "username", required=True, help="The approving finance staff username.")
@click.argument("upload_id", type=int)
def approve_upload_command(username: str, upload_id: int) -> None:
    """Finance approves a list applied after the deadline; it then takes effect."""

    def work() -> dict[str, Any]:
        actor = _staff(username, "finance")
        result = lists.approve_upload(get_db().session(), upload_id=upload_id, actor=actor)
        return _apply_and_close(result, actor)

    _run(work)


@departments_cli.command("batch")
@DEPARTMENT
@click.option("--year", type=int, required=True)
@click.option("--submit", "submit_as", default=None, help="Submit it, as this department user.")
def batch_command(department: str, year: int, submit_as: str | None) -> None:
    """Print the department's draft 代缴 batch; --submit USERNAME submits it."""

    def work() -> dict[str, Any]:
        session = get_db().session()
        if submit_as is None:
            return batches.draft_view(session, department=department, year=year, on=today())
        actor = _staff(submit_as, "department", department)
        batch = batches.submit(session, department=department, year=year, on=today(), actor=actor)
        session.commit()
        return batches.batch_view(session, batch)

    _run(work)


@departments_cli.command("approve-batch")
@click.option("--as", "username", required=True, help="The approving finance staff username.")
@click.argument("batch_id", type=int)
def approve_batch_command(username: str, batch_id: int) -> None:
    """Finance approves a submitted batch: its contributions are booked (once)."""

    def work() -> dict[str, Any]:
        session = get_db().session()
        actor = _staff(username, "finance")
        batch = batches.approve(session, batch_id=batch_id, actor=actor, on=today())
        session.commit()
        return batches.batch_view(session, batch)

    _run(work)
