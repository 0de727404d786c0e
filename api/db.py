"""Database plumbing: the declarative base, engines and sessions.

Plain SQLAlchemy 2 (not Flask-SQLAlchemy) because the relay, the workers, the CLI and the
sandbox reuse the models without a Flask app (STYLE.md 4a). One `Database` per app or worker
holds the engine and a `scoped_session`; the app removes the session at teardown and every
worker job removes it after the job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every model; the naming convention keeps Alembic diffs stable."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant on every backend.

    SQLite stores no zone, so values come back naive; this type re-attaches UTC on the way out
    and refuses naive values on the way in, so an instant never silently changes meaning.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


READ_ONLY_OPTION = "ssi_read_only"


def read_only_session(session: Session) -> Session:
    """Mark the session's next transaction as read-only (SQLite: deferred BEGIN, no write lock).

    Call before the first query of a request that never writes; a session already in a
    transaction is left as it is. Writing in such a transaction may fail with "database is
    locked" on SQLite, so only pure reads use it.
    """
    if not session.in_transaction():
        options: dict[str, Any] = {READ_ONLY_OPTION: True}
        bind = session.get_bind()
        if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
            # No BEGIN/ROLLBACK round trips: each statement reads its own snapshot. (A session
            # bound to a connection already in a transaction, as in tests, keeps it.)
            options["isolation_level"] = "AUTOCOMMIT"
        session.connection(execution_options=options)
    return session


def utcnow() -> datetime:
    return datetime.now(UTC)


# SQLSTATE classes of a server that is gone or going: 08 connection exception, 57P01-57P03
# admin/crash shutdown and "cannot connect now" (a server starting or in recovery).
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
# Retry-After of a 503 `database_unavailable`: a pool reconnects at once, a restart takes longer.
DATABASE_RETRY_AFTER_SECONDS = 1


def is_outage(error: BaseException) -> bool:
    """True when `error` says the database cannot be reached now — "try again", not a bug.

    Three shapes: a connection that died in use (SQLAlchemy invalidated it), a connection that
    could not be made at checkout (refused, timed out, server starting: an OperationalError
    with no statement, raised by the pool), and a pool with no free connection in time. A
    driver error from a statement the server did run (a constraint, a syntax error) is a bug
    or a conflict and stays what it is.
    """
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error, OperationalError) and error.statement is None:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return sqlstate.startswith(_OUTAGE_SQLSTATES)


# A pooled connection used this recently is handed out without a ping (HikariCP's
# `aliveBypassWindowMs`, 500 ms by default, makes the same trade); DATABASE_PING_AFTER_IDLE_MS.
ALIVE_WINDOW_SECONDS = 0.5
_LAST_USED = "ssi_last_used"


def make_engine(url: str, *, alive_window: float = ALIVE_WINDOW_SECONDS, **kwargs: Any) -> Engine:
    """Create an engine with the per-backend settings this project relies on.

    SQLite gets foreign keys on, WAL and a busy timeout so the API, the worker and the sandbox
    can share the embedded file; a server database gets a liveness ping on checkout for
    connections idle longer than `alive_window` seconds (`ping_when_idle`).
    """
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy own BEGIN so SAVEPOINTs and FOR UPDATE-less locking behave.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock at BEGIN: concurrent writers queue up instead of
            # failing with "database is locked" halfway through a payment transaction.
            # A unit of work that only reads may say so (`read_only_session`): a deferred BEGIN
            # takes no write lock, so readers never queue behind each other or behind writers.
            read_only = conn.get_execution_options().get(READ_ONLY_OPTION)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        # No JIT: request statements touch a household's rows, yet a cost estimate made
        # without statistics (a fresh bulk load, autovacuum off) can pass jit_above_cost, and
        # compiling then costs ~11 ms of server CPU per execution of a 0.1 ms statement (the
        # premiums page at 200k persons: tests/perf/measure_request_cost.py). Set per
        # connection so it holds whatever the server's configuration says.
        connect_args = dict(kwargs.pop("connect_args", {}))
        options = connect_args.get("options", "")
        connect_args["options"] = f"{options} -c jit=off".strip()
        kwargs["connect_args"] = connect_args
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        ping_when_idle(engine, alive_window)
    return engine


def ping_when_idle(engine: Engine, window: float) -> None:
    """Ping a pooled connection on checkout only when it sat idle longer than `window` s.

    `pool_pre_ping` pings on every checkout: one extra round trip per request and two per
    payment notification, about a sixth of a notification's wall time under load. A connection
    checked in moments ago was working moments ago; one that idled is where a restarted or
    failed-over server, a firewall's idle timeout or `idle_session_timeout` strike, and it is
    still pinged. A failed ping raises `DisconnectionError`, on which the pool discards the
    connection and checks out another (up to three times) — the caller never sees it. The rare
    connection that dies inside the window fails its first statement with a disconnect error:
    the pool is invalidated, the notification path retries (`api.payments.notify`) and the API
    answers 503 `database_unavailable` (`api.create_app`), never a 500.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last_used = record.info.get(_LAST_USED)
        if last_used is None or time.monotonic() - last_used <= window:
            return  # just connected, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its liveness ping") from exc


class Database:
    """An engine plus the scoped session used by one app or one worker process."""

    def __init__(
        self,
        url: str,
        engine: Engine | None = None,
        *,
        alive_window: float = ALIVE_WINDOW_SECONDS,
    ) -> None:
        self.url = url
        self.engine = engine or make_engine(url, alive_window=alive_window)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.session: scoped_session[Session] = scoped_session(self.session_factory)

    @contextmanager
    def job(self) -> Iterator[Session]:
        """One unit of work for a CLI command or worker job: commit on success, else roll back."""
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            self.session.remove()

    def dispose(self) -> None:
        self.session.remove()
        self.engine.dispose()


# Tables a bulk write (demo load, roster import, government batch) fills by the hundred thousand.
BULK_TABLES = (
    "households",
    "persons",
    "person_categories",
    "enrollments",
    "contributions",
)


def analyze(conn: Connection | Session, *tables: str) -> None:
    """`ANALYZE` the tables a bulk write just filled (PostgreSQL; nothing on SQLite).

    Why: the plans of the request paths must not depend on statistics nobody refreshes (the
    machine's PostgreSQL may run with autovacuum off; a freshly loaded district is otherwise
    planned as an empty schema). The hot statements are written to be index-driven without
    statistics too (tests/perf/test_plans.py); this keeps the estimates honest for the rest.
    Table names come from the code, never from input.
    """
    bind = conn.connection() if isinstance(conn, Session) else conn
    if bind.dialect.name != "postgresql":
        return
    for table in tables or BULK_TABLES:
        if not table.replace("_", "").isalnum():
            raise ValueError(f"not a table name: {table!r}")
        bind.execute(text(f"ANALYZE {table}"))


def get_db() -> Database:
    """The current app's `Database` (inside an app context)."""
    from flask import current_app

    db: Database = current_app.extensions["database"]
    return db


def get_session() -> Session:
    """The session of the current request or CLI command."""
    return get_db().session()


def unnest_insert(
    table: Any, *, per_row: tuple[str, ...], shared: tuple[str, ...], returning: tuple[str, ...]
) -> Any:
    """PostgreSQL: ``INSERT … SELECT unnest(:a::T[]), unnest(:b::U[]), :c … RETURNING …``.

    Several rows as one array per column (`per_row`) plus values common to all of them
    (`shared`): the statement's text is the same whatever the number of rows, so psycopg
    prepares it once per connection and never re-parses it, where a multi-row VALUES is a
    new, long statement for every row count that psycopg neither caches nor prepares. For
    the hot paths that write a handful of rows at a time (a payment's contributions and tax
    records). Parameters: `unnest_params`.
    """
    from sqlalchemy import bindparam, func, insert, select
    from sqlalchemy.dialects.postgresql import ARRAY

    arrays = select(
        *(
            func.unnest(bindparam(name, type_=ARRAY(table.c[name].type))).label(name)
            for name in per_row
        )
    ).subquery("rows")
    source = select(
        *(arrays.c[name] for name in per_row),
        *(bindparam(name, type_=table.c[name].type) for name in shared),
    )
    statement = insert(table).from_select([*per_row, *shared], source)
    if returning:
        statement = statement.returning(*(table.c[name] for name in returning))
    return statement


def unnest_params(
    rows: list[dict[str, Any]], *, per_row: tuple[str, ...], shared: tuple[str, ...]
) -> dict[str, Any]:
    """The parameters of an `unnest_insert` for `rows` (whose `shared` values are equal)."""
    params: dict[str, Any] = {name: [row[name] for row in rows] for name in per_row}
    params.update({name: rows[0][name] for name in shared})
    return params
