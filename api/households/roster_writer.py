"""Bulk writes for the roster import (and the demo, and the benchmark's floor).

Rows go to the driver as pre-built tuples through `Connection.exec_driver_sql` executemany, in
large batches, inside the caller's transaction: no ORM objects, no per-row statements, no
RETURNING. Primary keys are allocated up front (PostgreSQL: `nextval` of the column's sequence
for the whole batch in one query; SQLite: after `max(id)`, safe because the transaction holds
SQLite's single write lock from `BEGIN IMMEDIATE`, see api/db.py), so persons and their
categories can be written without reading anything back.

On PostgreSQL the inserts use COPY FROM STDIN (psycopg `Cursor.copy`) on the transaction's
own connection; updates and deletes, and every write on SQLite, use executemany.

Measured on the 2-core machine (bench/README.md): for 100k persons COPY took 0.8 s, psycopg's
pipelined executemany of tuples 1.8 s and multi-row VALUES 3.3 s; RETURNING-based
"insertmanyvalues" doubled the whole import, and `insert()` with dict parameters spends about
as long again in per-row bind processing as the driver does.
Values are converted once per column with the column type's own bind processor, so what lands
in the database is exactly what the ORM would have written (e.g. SQLite's datetime strings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import Boolean, Connection, Table, text

BATCH = 10_000


class BulkWriter:
    """Executemany of tuples into one connection's transaction."""

    def __init__(self, conn: Connection, *, batch: int = BATCH, copy: bool | None = None) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        self.batch = batch
        # COPY is PostgreSQL's bulk path: about twice psycopg's pipelined executemany here.
        self.copy = (self.dialect.driver == "psycopg") if copy is None else copy
        self._placeholder = "?" if self.dialect.paramstyle == "qmark" else "%s"

    def _processors(
        self, table: Table, columns: Sequence[str]
    ) -> list[Callable[[Any], Any] | None]:
        # Booleans need none: sqlite3 stores a bool as the integer SQLAlchemy would write (it
        # is an int), psycopg sends it as a boolean; values here are always real bools.
        return [
            None
            if isinstance(table.c[name].type, Boolean)
            else table.c[name].type.dialect_impl(self.dialect).bind_processor(self.dialect)
            for name in columns
        ]

    def _converted(
        self,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        constants: Sequence[Any] = (),
    ) -> Iterable[Sequence[Any]]:
        """Rows through the columns' bind processors, with `constants` (already converted)
        appended to each."""
        processors = self._processors(table, columns)
        active = [(i, p) for i, p in enumerate(processors) if p is not None]
        tail = tuple(constants)
        if not active:
            return (tuple(row) + tail for row in rows) if tail else rows
        return (_apply(row, active, tail) for row in rows)

    def _constants(
        self, table: Table, constants: dict[str, Any] | None
    ) -> tuple[list[str], list[Any]]:
        """Columns that take one value for every row, converted once."""
        if not constants:
            return [], []
        names = list(constants)
        values = [
            p(v) if p is not None and v is not None else v
            for p, v in zip(self._processors(table, names), constants.values(), strict=True)
        ]
        return names, values

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        count = 0
        it = iter(rows)
        while chunk := list(islice(it, self.batch)):
            self.conn.exec_driver_sql(sql, chunk)  # type: ignore[arg-type]
            count += len(chunk)
        return count

    def insert(
        self,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        constants: dict[str, Any] | None = None,
    ) -> int:
        """INSERT rows (tuples in `columns` order, then `constants`); return how many."""
        extra, values = self._constants(table, constants)
        names = [*columns, *extra]
        if self.copy:
            return self._copy(table, names, self._converted(table, columns, rows, values))
        placeholders = ", ".join([self._placeholder] * len(names))
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({placeholders})"
        return self._executemany(sql, self._converted(table, columns, rows, values))

    def _copy(self, table: Table, names: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """PostgreSQL COPY FROM STDIN through psycopg, on the transaction's own connection."""
        driver = self.conn.connection.driver_connection
        assert driver is not None
        count = 0
        with driver.cursor() as cursor:  # type: ignore[attr-defined]
            statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        return count

    def update(
        self,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        constants: dict[str, Any] | None = None,
        key: str = "id",
    ) -> int:
        """UPDATE by primary key: each row is the new `columns` values, then the key."""
        extra, values = self._constants(table, constants)
        ph = self._placeholder
        # The constants come first in SET, so each row is (constants, columns, key).
        assignments = ", ".join(f"{c} = {ph}" for c in [*extra, *columns])
        sql = f"UPDATE {table.name} SET {assignments} WHERE {key} = {ph}"
        converted = self._converted(table, [*columns, key], rows)
        if values:
            converted = ((*values, *row) for row in converted)
        return self._executemany(sql, converted)

    def delete(self, table: Table, ids: Iterable[int], *, key: str = "id") -> int:
        sql = f"DELETE FROM {table.name} WHERE {key} = {self._placeholder}"
        return self._executemany(sql, ((i,) for i in ids))

    def allocate_ids(self, table: Table, count: int) -> list[int]:
        """`count` fresh primary keys for `table` (see the module docstring for why it's safe)."""
        if count <= 0:
            return []
        if self.dialect.name == "postgresql":
            result = self.conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"
                ),
                {"t": table.name, "n": count},
            )
            return [row[0] for row in result]
        if self.dialect.name != "sqlite":
            raise NotImplementedError(f"id allocation for {self.dialect.name}")
        start = self.conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {table.name}")).scalar()
        first = int(start or 0) + 1
        return list(range(first, first + count))


def _apply(
    row: Sequence[Any], active: list[tuple[int, Callable[[Any], Any]]], tail: tuple[Any, ...]
) -> tuple[Any, ...]:
    values = list(row)
    for i, processor in active:
        value = values[i]
        if value is not None:
            values[i] = processor(value)
    if tail:
        values.extend(tail)
    return tuple(values)
