"""`flask --app wsgi payments …`: the healing (orders and refunds), expiry and refund jobs,
and the worker."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from api.clock import today
from api.config import Config
from api.db import get_db
from api.errors import DomainError
from api.payments import healing
from api.payments.government import run_government_batch
from api.payments.refunds import process_due_refunds
from api.payments.stray_refunds import process_due_stray_refunds

payments_cli = AppGroup("payments", help="Payment orders: reconcile, expire, refunds, worker.")


def _settings() -> Config:
    settings: Config = current_app.config["SETTINGS"]
    return settings


def _echo(report: object) -> None:
    click.echo(json.dumps(report, ensure_ascii=False, sort_keys=True))


@payments_cli.command("reconcile-open")
@click.option(
    "--older-than-minutes",
    type=click.IntRange(min=0),
    default=None,
    help="Query orders open longer than this (default RECONCILE_AFTER_MINUTES).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=healing.RECONCILE_BATCH,
    show_default=True,
    help="Orders read per batch (each healed in its own transaction).",
)
@click.option(
    "--budget-seconds",
    type=click.FloatRange(min=0.1),
    default=healing.RECONCILE_BUDGET_SECONDS,
    show_default=True,
    help="Stop starting new orders after this long; the rest is counted in `remaining`.",
)
def reconcile_open_command(
    older_than_minutes: int | None, batch_size: int, budget_seconds: float
) -> None:
    """Ask the channel about every order still open and apply what it says (补单).

    Drains every due order (no cap) within the time budget; prints checked, applied, closed,
    still_open, skipped (held by another worker), remaining and the per-answer counts. Safe to
    run on several workers at once on PostgreSQL (FOR UPDATE SKIP LOCKED)."""
    age = None if older_than_minutes is None else timedelta(minutes=older_than_minutes)
    _echo(
        healing.reconcile_open(
            get_db(),
            _settings(),
            older_than=age,
            batch=batch_size,
            budget_seconds=budget_seconds,
        )
    )


@payments_cli.command("reconcile-refunds")
@click.option(
    "--older-than-minutes",
    type=click.IntRange(min=0),
    default=None,
    help="Query refunds processing longer than this (default RECONCILE_REFUNDS_AFTER_MINUTES).",
)
def reconcile_refunds_command(older_than_minutes: int | None) -> None:
    """Ask the channel about refunds still processing and book a final answer (退费补单)."""
    age = None if older_than_minutes is None else timedelta(minutes=older_than_minutes)
    _echo(healing.reconcile_refunds(get_db(), _settings(), older_than=age))


@payments_cli.command("expire")
def expire_command() -> None:
    """Close orders past their expiry at the channel, then here."""
    _echo(healing.expire_orders(get_db(), _settings()))


@payments_cli.command("process-refunds")
@click.option("--limit", type=click.IntRange(min=1), default=50)
def process_refunds_command(limit: int) -> None:
    """Send due refunds (of our orders, and stray ones) to their channel and book the answers."""
    counts = process_due_refunds(get_db(), _settings(), limit=limit)
    for key, n in process_due_stray_refunds(get_db(), _settings(), limit=limit).items():
        counts[f"stray_{key}"] = counts.get(f"stray_{key}", 0) + n
    _echo(counts)


@payments_cli.command("worker")
@click.option("--interval", type=click.FloatRange(min=0.1), default=15.0, show_default=True)
@click.option("--once", is_flag=True, help="Run one round and exit.")
def worker_command(interval: float, once: bool) -> None:
    """Run the callback-log sweep, reconcile-open, expire, process-refunds and
    reconcile-refunds every INTERVAL seconds until stopped."""
    if once:
        _echo(healing.run_once(get_db(), _settings()))
        return
    healing.run_worker(get_db(), _settings(), interval=interval)


@payments_cli.command("government-batch")
@click.option("--year", type=int, required=True, help="Insurance year, e.g. 2020.")
@click.option("--department", default=None, help="Only categories this source asserted.")
@click.option("--town", default=None, help="Only persons of this town (code).")
@click.option("--dry-run", is_flag=True, help="Report what would be booked; write nothing.")
def government_batch_command(
    year: int, department: str | None, town: str | None, dry_run: bool
) -> None:
    """Book the premiums the government pays (代缴) as source=government contributions.

    District finance's batch: tier-100 pension, and the medical premiums of the groups that
    only the roster (or another non-department source) marks. A medical premium whose
    government category came from a department's list (api/departments) is that department's
    batch (`flask departments batch`), never this one; a department code is refused here.
    """
    from api.departments.codes import CODES, MEDICAL_PAYER_ORDER

    if department in CODES:
        raise click.ClickException(
            f"{department} 的代缴批次请用 flask departments batch --department {department}"
        )
    actor = f"department:{department}" if department else "cli:government-batch"
    try:
        report = run_government_batch(
            get_db(),
            year=year,
            on=today(),
            department=department,
            town=town,
            dry_run=dry_run,
            actor=actor,
            skip_medical_sources=frozenset(MEDICAL_PAYER_ORDER),
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    _echo(report.as_dict())
