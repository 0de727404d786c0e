"""`flask --app wsgi payments …`: the healing, expiry and refund jobs, and the worker."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from api.config import Config
from api.db import get_db
from api.payments import healing
from api.payments.refunds import process_due_refunds

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
def reconcile_open_command(older_than_minutes: int | None) -> None:
    """Ask the channel about orders still open and apply what it says (补单)."""
    age = None if older_than_minutes is None else timedelta(minutes=older_than_minutes)
    _echo(healing.reconcile_open(get_db(), _settings(), older_than=age))


@payments_cli.command("expire")
def expire_command() -> None:
    """Close orders past their expiry at the channel, then here."""
    _echo(healing.expire_orders(get_db(), _settings()))


@payments_cli.command("process-refunds")
@click.option("--limit", type=click.IntRange(min=1), default=50)
def process_refunds_command(limit: int) -> None:
    """Send due refunds to their channel and book the answers."""
    _echo(process_due_refunds(get_db(), _settings(), limit=limit))


@payments_cli.command("worker")
@click.option("--interval", type=click.FloatRange(min=0.1), default=15.0, show_default=True)
@click.option("--once", is_flag=True, help="Run one round and exit.")
def worker_command(interval: float, once: bool) -> None:
    """Run reconcile-open, expire and process-refunds every INTERVAL seconds until stopped."""
    if once:
        _echo(healing.run_once(get_db(), _settings()))
        return
    healing.run_worker(get_db(), _settings(), interval=interval)
