"""`flask pii status | rotate | retire KEY_ID` (docs/pii.md, "Rotating keys")."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from api.pii import service
from api.pii.keyring import current

pii_cli = AppGroup("pii", help="Keys of residents' ID numbers and names at rest.")


def _engine():  # type: ignore[no-untyped-def]
    return current_app.extensions["database"].engine


@pii_cli.command("status")
def status() -> None:
    """The configured key ids and how many stored values use each."""
    keyring = current()
    click.echo(f"data keys: {', '.join(keyring.data_key_ids)} (current {keyring.current_key_id})")
    click.echo(
        f"index keys: {', '.join(keyring.index_key_ids)} (current {keyring.current_index_key_id})"
    )
    for column, counts in service.key_usage(_engine()).items():
        shown = ", ".join(f"{k}={n}" for k, n in counts.items()) or "empty"
        click.echo(f"  {column}: {shown}")


@pii_cli.command("rotate")
@click.option("--batch", type=click.IntRange(1, 50_000), default=service.BATCH, show_default=True)
def rotate(batch: int) -> None:
    """Re-encrypt every value under the current keys (resumable; safe with the app running)."""
    report = service.rotate(
        _engine(),
        batch=batch,
        progress=lambda table, n: click.echo(f"  {table}: {n} row(s) rewritten"),
    )
    click.echo(f"rotated {report.rows} row(s); every value is under the current keys")


@pii_cli.command("retire")
@click.argument("key_id")
def retire(key_id: str) -> None:
    """Check that KEY_ID encrypts nothing any more (then remove it from the configuration)."""
    try:
        service.retire(_engine(), key_id)
    except service.KeyInUse as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{key_id} is no longer used: remove it from PII_KEYS / PII_INDEX_KEYS")
