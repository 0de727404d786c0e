"""`flask --app wsgi outbox …`: the relay worker and the operator's tools for the tax queue."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from api.db import get_db, utcnow
from api.extensions.inputs import DATE_MAX, DATE_MIN
from api.payments.outbox import service
from api.payments.outbox.export import render
from api.payments.outbox.relay import RelaySettings, run_relay
from api.payments.outbox.service import RetryPolicy
from api.payments.outbox.transports import open_publisher, parse_queue_url

outbox_cli = AppGroup("outbox", help="Tax-side reconciliation queue (transactional outbox).")


def _day(_ctx: Any, _param: Any, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("use YYYY-MM-DD") from exc
    if not DATE_MIN <= day <= DATE_MAX:  # the API's bounds: year 1 or 9999 overflow day ± 1
        raise click.BadParameter(f"use a date from {DATE_MIN} to {DATE_MAX}")
    return day


@outbox_cli.command("relay")
@click.option("--once", is_flag=True, help="Publish everything due, then exit (cron, tests).")
@click.option("--batch", type=click.IntRange(1, 5000), default=200, show_default=True)
@click.option("--max-attempts", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--idle", type=float, default=1.0, show_default=True, help="Seconds between polls.")
def relay_command(once: bool, batch: int, max_attempts: int, idle: float) -> None:
    """Publish pending records; mark them sent once the broker confirmed them.

    Several relays may run at once on PostgreSQL; on SQLite run one. SIGTERM stops it after
    the current batch.
    """
    settings = current_app.config["SETTINGS"]
    database = get_db()
    target = parse_queue_url(settings.QUEUE_URL, database_url=settings.DATABASE_URL)
    publisher = open_publisher(
        settings.QUEUE_URL, database_url=settings.DATABASE_URL, engine=database.engine
    )
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM.value, signal.SIGINT.value):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    click.echo(f"outbox relay → {target.describe()}", err=True)
    try:
        totals = run_relay(
            database,
            publisher,
            settings=RelaySettings(
                batch=batch, retry=RetryPolicy(max_attempts=max_attempts), idle_seconds=idle
            ),
            once=once,
            stop=stop,
        )
    finally:
        publisher.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    click.echo(
        f"sent {totals.sent}, failed {totals.failed}, dead {totals.dead}, outages {totals.outages}"
    )
    if once and totals.outages:
        click.echo(f"queue unavailable: {totals.last_error}", err=True)
        sys.exit(1)


def _print_records(messages: list[Any], total: int) -> None:
    click.echo(f"{total} record(s)")
    for m in messages:
        click.echo(
            "\t".join(
                [
                    m.id,
                    m.event,
                    f"contribution={m.contribution_id}",
                    f"town={m.town_code}",
                    f"status={m.status}",
                    f"attempts={m.attempts}",
                    f"sent={m.sent_at.isoformat() if m.sent_at else '-'}",
                    f"ack={m.ack_status or '-'}",
                    (m.last_error or "")[:120],
                ]
            )
        )


@outbox_cli.command("dead")
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
def dead_command(limit: int) -> None:
    """List dead records (publishing or booking failed every time): never dropped."""
    with get_db().job() as session:
        messages, total = service.list_records(session, status="dead", limit=limit)
        _print_records(messages, total)


@outbox_cli.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "sent", "dead", "unacknowledged"]),
    default="unacknowledged",
    show_default=True,
)
@click.option("--older-than-minutes", type=click.IntRange(0), default=None)
@click.option("--town", default=None)
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
def list_command(status: str, older_than_minutes: int | None, town: str | None, limit: int) -> None:
    """List records by state (default: sent but not acknowledged by the tax side)."""
    older = timedelta(minutes=older_than_minutes) if older_than_minutes is not None else None
    with get_db().job() as session:
        messages, total = service.list_records(
            session, status=status, older_than=older, town_code=town, limit=limit
        )
        _print_records(messages, total)


@outbox_cli.command("status")
def status_command() -> None:
    """Counts per state."""
    with get_db().job() as session:
        for key, value in service.counts_by_state(session).items():
            click.echo(f"{key}\t{value}")


@outbox_cli.command("replay")
@click.option("--since", required=True, callback=_day, help="YYYY-MM-DD (Beijing date).")
@click.option("--until", default=None, callback=_day, help="YYYY-MM-DD, inclusive.")
@click.option("--town", default=None, help="Town code.")
def replay_command(since: date, until: date | None, town: str | None) -> None:
    """Re-publish the records written in a date range (same ids; the tax side de-duplicates)."""
    with get_db().job() as session:
        n = service.replay(session, since=since, until=until, town_code=town)
    click.echo(f"{n} record(s) marked for re-publishing; the relay sends them next")


@outbox_cli.command("retry")
@click.argument("record_ids", nargs=-1)
@click.option("--all", "all_dead", is_flag=True, help="Every dead record.")
def retry_command(record_ids: tuple[str, ...], all_dead: bool) -> None:
    """Give dead records a fresh set of attempts (after the cause was fixed)."""
    if not record_ids and not all_dead:
        raise click.UsageError("name record ids or pass --all")
    with get_db().job() as session:
        n = service.retry_dead(session, record_ids=list(record_ids) or None)
    click.echo(f"{n} dead record(s) back to pending")


@outbox_cli.command("export")
@click.option("--insurance", type=click.Choice(["medical", "pension"]), required=True)
@click.option("--town", default=None, help="Town code (default: every town).")
@click.option("--from", "date_from", required=True, callback=_day, help="Paid from (YYYY-MM-DD).")
@click.option("--to", "date_to", required=True, callback=_day, help="Paid to, inclusive.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def export_command(
    insurance: str, town: str | None, date_from: date, date_to: date, fmt: str, out: Path
) -> None:
    """Information return (征缴信息回传): acknowledged contributions, full ID numbers (the
    bureaus own these registrations); the export is written to the audit log."""
    from api.audit.service import record as audit

    with get_db().job() as session:
        messages = service.acknowledged_for_export(
            session, insurance=insurance, town_code=town, date_from=date_from, date_to=date_to
        )
        out.write_bytes(render(messages, fmt=fmt, title=f"{insurance}-{town or 'all'}"))
        audit(
            session,
            actor="cli",
            action="tax.export",
            subject=f"{insurance}:{town or 'all'}",
            detail={
                "from": date_from.isoformat(),
                "to": date_to.isoformat(),
                "rows": len(messages),
                "format": fmt,
                "at": utcnow().isoformat(),
            },
        )
    click.echo(f"{len(messages)} row(s) written to {out}")
