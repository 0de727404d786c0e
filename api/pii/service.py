"""Key rotation 密钥轮换 over every encrypted column and blind index of the metadata.

`rotate` finds rows holding a value under a key other than the current one (a data key, or an
index key for a blind index), and rewrites them in batches, each its own committed transaction:
stop it at any point and run it again, it carries on with the rows still stale. It is safe
with the app running because every configured key still reads, and because each UPDATE names
the old stored values (`WHERE id = :id AND col = :old ...`): a row the app rewrote meanwhile
(already under the current key) is left as the app wrote it. Lookups keep working while the
blind index is rebuilt: they look up the index under every configured index key
(`Person.id_number_is`), one IN of two values on the unique index.

`key_usage` counts the stored values per key id; `retire` refuses while any value still uses a
key (once it says so, the key can be removed from PII_KEYS / PII_INDEX_KEYS).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Column, Engine, Table, Text, and_, func, or_, select, type_coerce, update
from sqlalchemy.sql import bindparam
from sqlalchemy.sql.elements import ColumnElement

from api.db import Base
from api.pii.crypto import VERSION, Keyring
from api.pii.keyring import current
from api.pii.types import EncryptedText

BATCH = 2_000


@dataclass(frozen=True)
class _Target:
    """One table's encrypted columns and blind indexes (index column → its source column)."""

    table: Table
    encrypted: tuple[Column[str], ...]
    indexes: tuple[tuple[Column[str], Column[str], str], ...]  # (index, source, purpose)

    @property
    def pk(self) -> Column[object]:
        (pk,) = self.table.primary_key.columns
        return pk


def targets() -> list[_Target]:
    """Every table of the metadata holding an `EncryptedText` column (new packages included)."""
    found = []
    for table in Base.metadata.sorted_tables:
        encrypted = tuple(c for c in table.columns if isinstance(c.type, EncryptedText))
        if not encrypted:
            continue
        indexes = tuple(
            (c, table.c[c.info["blind_index"][0]], c.info["blind_index"][1])
            for c in table.columns
            if "blind_index" in c.info
        )
        found.append(_Target(table, encrypted, indexes))
    return found


def _raw(column: Column[str]) -> Column[str]:
    return type_coerce(column, Text)  # type: ignore[return-value]


def _data_prefix(kid: str) -> str:
    return f"{VERSION}:{kid}:"


@dataclass
class RotationReport:
    rows: int = 0
    by_table: Counter[str] = field(default_factory=Counter)


def rotate(
    engine: Engine,
    *,
    batch: int = BATCH,
    keyring: Keyring | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> RotationReport:
    """Re-encrypt (and re-index) every stale value under the current keys; see module doc."""
    keyring = keyring or current()
    report = RotationReport()
    for target in targets():
        while True:
            done = _rotate_table(engine, target, keyring, batch)
            if not done:
                break
            report.rows += done
            report.by_table[target.table.name] += done
            if progress is not None:
                progress(target.table.name, report.by_table[target.table.name])
    return report


def _stale(target: _Target, keyring: Keyring) -> ColumnElement[bool]:
    data = _data_prefix(keyring.current_key_id)
    conditions = [
        and_(c.is_not(None), ~_raw(c).startswith(data, autoescape=True)) for c in target.encrypted
    ]
    conditions += [
        ~ix.startswith(f"{keyring.current_index_key_id}:", autoescape=True)
        for ix, _src, _p in target.indexes
    ]
    return or_(*conditions)


def _rotate_table(engine: Engine, target: _Target, keyring: Keyring, batch: int) -> int:
    """One batch of one table, in its own transaction; how many rows were rewritten."""
    pk = target.pk
    columns = [*target.encrypted, *(ix for ix, _s, _p in target.indexes)]
    names = [c.name for c in columns]
    query = (
        select(pk, *(_raw(c) for c in columns))
        .where(_stale(target, keyring))
        .order_by(pk)
        .limit(batch)
    )
    purposes = {c.name: c.type.purpose for c in target.encrypted}  # type: ignore[attr-defined]
    statement = (
        update(target.table)
        .where(pk == bindparam("_pk"))
        .where(*(_raw(c) == bindparam(f"_old_{c.name}", type_=Text) for c in columns))
        .values({_raw(c): bindparam(f"_new_{c.name}", type_=Text) for c in columns})
    )
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        if not rows:
            return 0
        params = []
        for row in rows:
            old = dict(zip(names, row[1:], strict=True))
            plain = {
                name: keyring.decrypt(value, purposes[name])
                for name, value in old.items()
                if name in purposes and value is not None
            }
            new = {
                name: keyring.encrypt(plain[name], purposes[name]) if name in plain else None
                for name in purposes
            }
            for ix, source, purpose in target.indexes:
                new[ix.name] = keyring.index(plain[source.name], purpose)
            params.append(
                {"_pk": row[0]}
                | {f"_old_{n}": v for n, v in old.items()}
                | {f"_new_{n}": v for n, v in new.items()}
            )
        # NULL values are never stale (the filter skips them); a row whose value is NULL but
        # another column is stale compares `col = NULL` (false): such rows do not exist today
        # (every encrypted column is NOT NULL) and would be left for the report to show.
        conn.execute(statement, params)
        return len(rows)


def key_usage(engine: Engine) -> dict[str, dict[str, int]]:
    """Stored values per key id, per column (`table.column`): `{"persons.name": {"k1": 9}}`."""
    keyring = current()
    usage: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for target in targets():
            for column in target.encrypted:
                usage[f"{target.table.name}.{column.name}"] = _count_by_prefix(
                    conn, column, {k: _data_prefix(k) for k in keyring.data_key_ids}
                )
            for ix, _src, _p in target.indexes:
                usage[f"{target.table.name}.{ix.name}"] = _count_by_prefix(
                    conn, ix, {k: f"{k}:" for k in keyring.index_key_ids}
                )
    return usage


def _count_by_prefix(conn: object, column: Column[str], prefixes: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    total = conn.execute(select(func.count()).where(column.is_not(None))).scalar_one()  # type: ignore[attr-defined]
    known = 0
    for kid, prefix in prefixes.items():
        n = conn.execute(  # type: ignore[attr-defined]
            select(func.count()).where(_raw(column).startswith(prefix, autoescape=True))
        ).scalar_one()
        if n:
            counts[kid] = n
        known += n
    if total - known:
        counts["(unknown key)"] = total - known
    return counts


class KeyInUse(Exception):
    """A key still encrypts (or indexes) stored values, or is the current key."""


def retire(engine: Engine, key_id: str) -> None:
    """Check that `key_id` may be removed from the configuration; `KeyInUse` if not."""
    keyring = current()
    if key_id in (keyring.current_key_id, keyring.current_index_key_id):
        raise KeyInUse(f"{key_id} is the current key: put the new key first, then rotate")
    in_use = {
        column: counts[key_id] for column, counts in key_usage(engine).items() if counts.get(key_id)
    }
    if in_use:
        listing = ", ".join(f"{c}: {n}" for c, n in in_use.items())
        raise KeyInUse(f"{key_id} still used by {listing}: run `flask pii rotate` first")
    if key_id not in keyring.data_key_ids + keyring.index_key_ids:
        raise KeyInUse(f"{key_id} is not a configured key")
