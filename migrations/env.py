"""Alembic environment: the engine and metadata come from the running app (Flask-Migrate).

On PostgreSQL every migration runs with lock and statement timeouts so a migration never
queues behind live traffic for long (STYLE.md 14a). SQLite uses batch mode for ALTERs.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

from api import model_registry  # noqa: F401
from api.db import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
log = logging.getLogger("alembic.env")

target_metadata = Base.metadata


def _engine():
    return current_app.extensions["database"].engine


def run_migrations_offline() -> None:
    context.configure(
        url=current_app.extensions["database"].url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = _engine()
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    is_pg = connection.dialect.name == "postgresql"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=not is_pg,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        if is_pg:
            connection.exec_driver_sql("SET lock_timeout = '10s'")
            connection.exec_driver_sql("SET statement_timeout = '10min'")
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
