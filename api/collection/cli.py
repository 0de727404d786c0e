"""`flask --app wsgi collection …`: demo accounts for agent collection (sandbox only)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from api.auth.service import create_staff
from api.db import get_db
from api.errors import InvalidInput, NotFound
from api.households.service import town_villages

collection_cli = AppGroup("collection", help="Agent collection (代办员收款).")


@collection_cli.command("demo-staff")
@click.option("--town", "town_name", default="西集镇", show_default=True, help="Town name or code.")
@click.option("--agent-password", default="agent123", show_default=True)
@click.option("--town-password", default="town1234", show_default=True)
def demo_staff_command(town_name: str, agent_password: str, town_password: str) -> None:
    """One agent per village of TOWN (agent-<village code>) and one town account
    (town-<town code>); usernames that exist are left alone. Sandbox and demo only."""
    with get_db().job() as session:
        try:
            town, villages = town_villages(session, town=town_name)
        except NotFound as exc:
            raise click.ClickException(f"no town {town_name!r} (load the district first)") from exc
        wanted: list[tuple[str, str, str, str, str | None, str | None]] = [
            (f"agent-{v['code']}", "agent", agent_password, f"{v['name']}代办员", None, v["code"])
            for v in villages
        ]
        wanted.append(
            (
                f"town-{town['code']}",
                "town",
                town_password,
                f"{town['name']}养老医保管理",
                town["code"],
                None,
            )
        )
        made = 0
        for username, role, password, display, town_code, village_code in wanted:
            try:
                with session.begin_nested():
                    create_staff(
                        session,
                        username=username,
                        role=role,
                        password=password,
                        display_name=display,
                        town=town_code,
                        village=village_code,
                    )
                made += 1
            except InvalidInput as exc:
                if (exc.errors or {}).get("staff", {}).get("username") != ["用户名已存在"]:
                    raise click.ClickException(f"{username}: {exc.errors}") from exc
        click.echo(
            f"{town['name']}: {len(villages)} agents agent-{town['code']}2xx / {agent_password},"
            f" town-{town['code']} / {town_password} ({made} created)"
        )
