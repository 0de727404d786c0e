"""`flask --app wsgi reconcile run --channel wechat|alipay --date YYYY-MM-DD [--file] [--json]`.

Exit codes: 0 the run completed (whatever it found), 1 it could not (bill not ready, channel
down, malformed bill: the message says so; retry later), 2 bad usage (click's own).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from api.db import get_db
from api.reconciliation.runs import CHANNELS, ReconcileError, run

reconcile_cli = AppGroup("reconcile", help="Reconciliation (对账) of the channels' daily bills.")


def _day(_ctx: click.Context, _param: click.Parameter, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("a Beijing date, YYYY-MM-DD") from exc


@reconcile_cli.command("run")
@click.option("--channel", type=click.Choice(CHANNELS), required=True)
@click.option(
    "--date", "day", required=True, callback=_day, help="Bill date (Beijing), YYYY-MM-DD."
)
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Reconcile this bill file (as downloaded) instead of fetching it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def run_command(channel: str, day: date, path: Path | None, as_json: bool) -> None:
    """Match CHANNEL's bill of DATE against our orders and refunds; store the run and items."""
    data = path.read_bytes() if path is not None else None
    try:
        report = run(get_db(), current_app.config["SETTINGS"], channel, day, data=data, actor="cli")
    except ReconcileError as exc:
        if as_json:
            click.echo(
                json.dumps(
                    {"channel": channel, "bill_date": day.isoformat(), "status": "failed",
                     "error": exc.code, "message": str(exc)},
                    ensure_ascii=False,
                )
            )  # fmt: skip
        click.echo(f"reconcile: {exc}", err=True)
        raise SystemExit(1) from exc
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, sort_keys=True))
        return
    summary = ", ".join(f"{k}={v}" for k, v in report.counts.items() if v)
    click.echo(
        f"{channel} {day}: {report.status}; {report.bill_rows} rows; "
        f"bill {report.bill_total_fen} fen, ours {report.our_total_fen} fen; {summary or 'empty'}"
    )
