"""Registers every domain's CLI group on `app.cli` (`flask --app wsgi <group> <command>`)."""

from __future__ import annotations

from flask import Flask


def register_cli(app: Flask) -> None:
    from api.auth.cli import staff_cli
    from api.households.cli import demo_cli, roster_cli
    from api.payments.outbox.cli import outbox_cli

    for group in (roster_cli, demo_cli, staff_cli):
        app.cli.add_command(group)
    app.cli.add_command(outbox_cli)
    from api.payments.cli import payments_cli

    app.cli.add_command(payments_cli)
    from api.pii.cli import pii_cli

    app.cli.add_command(pii_cli)
    from api.collection.cli import collection_cli
    from api.reconciliation.cli import reconcile_cli

    app.cli.add_command(collection_cli)

    app.cli.add_command(reconcile_cli)
    from api.departments.cli import departments_cli

    app.cli.add_command(departments_cli)
