"""`flask --app wsgi staff …`: staff accounts 工作人员账号."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from api.auth.models import STAFF_ROLES, StaffAccount
from api.auth.service import create_staff
from api.db import get_db
from api.errors import InvalidInput

staff_cli = AppGroup("staff", help="Staff accounts.")


@staff_cli.command("create")
@click.option("--username", required=True)
@click.option("--role", required=True, type=click.Choice(STAFF_ROLES))
@click.option("--town", default=None, help="Town name or code (role town).")
@click.option("--village", default=None, help="Village code (role agent).")
@click.option(
    "--department",
    default=None,
    help="Department code (role department): civil_affairs, disabled_federation, "
    "poverty_office, health_commission, police (or 民政, 残联, 扶贫办, 卫健, 公安).",
)
@click.option("--display-name", default=None)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for when not given.",
)
@click.option("--if-missing", is_flag=True, help="Do nothing if the username already exists.")
def create_command(
    username: str,
    role: str,
    town: str | None,
    village: str | None,
    department: str | None,
    display_name: str | None,
    password: str,
    if_missing: bool,
) -> None:
    """Create a staff account (agent needs --village, town needs --town)."""
    database = get_db()
    with database.job() as session:
        existing = session.scalars(
            select(StaffAccount).where(StaffAccount.username == username.strip())
        ).one_or_none()
        if existing is not None and if_missing:
            click.echo(f"staff account {existing.username!r} exists; nothing to do")
            return
        try:
            staff = create_staff(
                session,
                username=username,
                role=role,
                password=password,
                display_name=display_name,
                town=town,
                village=village,
                department=department,
            )
        except InvalidInput as exc:
            details = (exc.errors or {}).get("staff", {})
            lines = [f"  {field}: {'; '.join(msgs)}" for field, msgs in details.items()]
            raise click.ClickException("\n".join(["invalid staff account:", *lines])) from exc
        click.echo(f"created staff account {staff.username!r} (role {staff.role}, id {staff.id})")


@staff_cli.command("deactivate")
@click.option("--username", required=True)
def deactivate_command(username: str) -> None:
    """Deactivate a staff account: its tokens stop working at once."""
    with get_db().job() as session:
        staff = session.scalars(
            select(StaffAccount).where(StaffAccount.username == username)
        ).one_or_none()
        if staff is None:
            raise click.ClickException(f"no staff account {username!r}")
        staff.active = False
        from api.audit.service import record

        record(session, actor="system:cli", action="staff.deactivate", subject=f"staff:{staff.id}")
        click.echo(f"deactivated {username!r}")
