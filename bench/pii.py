"""Encryption at rest (api/pii): the hot paths with the encrypted type against plain text.

On PostgreSQL (and SQLite with `BENCH_PII_SQLITE=1`), twice — once with the real keyring, once
with `_PlainKeyring` installed, which stores the values as given and uses the ID number itself
as its "blind index" (a benchmark-only stand-in, defined here and nowhere in `api/`: the same
schema, the same code paths, no cryptography):

- roster import of the demo district (scale `BENCH_PII_SCALE`, default 1.0 = 437,854 persons;
  `--quick` 0.1) into a fresh database, file parsed before the clock starts; target 2×;
- binding: `POST /api/v1/households/bind` through the Flask test client (no HTTP server),
  `BENCH_PII_REQUESTS` (default 2,000) distinct residents (blind-index lookup, name check,
  binding row, audit row, masked household); target 1.3×;
- the premiums page: `GET /api/v1/households/{id}/premiums?year=2020` for those households
  (decrypts every member's ID number and name); target 1.3×;
- rotation: `api.pii.service.rotate` re-encrypting and re-indexing every person (new data key
  and new index key) — reported as persons per second (no baseline).
"""

from __future__ import annotations

import os
import random
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_PII_INDEX_KEYS,
    BENCH_PII_KEYS,
    migrated_app,
    pg_available,
    pg_database,
    result_row,
    timed,
)

TODAY = date(2019, 11, 5)
SEED = 42


def _plain_keyring() -> Any:
    from api.pii.crypto import Key, Keyring

    class _PlainKeyring(Keyring):
        """Pass-through: the benchmark's "encryption off". Never configurable in the app."""

        def encrypt(self, value: str, purpose: str) -> str:
            return value

        def decrypt(self, stored: str, purpose: str) -> str:
            return stored

        def index(self, value: str, purpose: str) -> str:
            return value

        def indexes(self, value: str, purpose: str) -> list[str]:
            return [value]

    return _PlainKeyring([Key("plain", b"p" * 32)], [Key("plainix", b"q" * 32)])


def _real_keyring(extra: str = "", extra_index: str = "") -> Any:
    from api.pii.crypto import Keyring
    from api.pii.keyring import parse_keys

    data = f"{extra},{BENCH_PII_KEYS}" if extra else BENCH_PII_KEYS
    index = f"{extra_index},{BENCH_PII_INDEX_KEYS}" if extra_index else BENCH_PII_INDEX_KEYS
    return Keyring(parse_keys(data, "bench"), parse_keys(index, "bench"))


def _run_mode(url: str, path: Path, keyring: Any, requests: int, rotate: bool) -> dict[str, Any]:
    from api.auth.models import ResidentAccount
    from api.auth.tokens import issue_token
    from api.households.district import ensure_district
    from api.households.roster import import_roster
    from api.households.roster_files import read_roster
    from api.pii import keyring as installed
    from api.pii import service

    app = migrated_app(url)
    installed.install(keyring)
    app.config["APP_TODAY"] = TODAY.isoformat()
    database = app.extensions["database"]
    out: dict[str, Any] = {}
    try:
        with database.job() as session:
            ensure_district(session)

        def load() -> Any:
            with database.job() as session:
                return import_roster(
                    session, read_roster(path), file_name=path.name, today=TODAY, actor="bench"
                )

        out["import"], report = timed(load)
        out["persons"] = report.created
        assert report.written and not report.errors, report.counts()

        rows = [r for r in read_roster(path) if not r.deceased_on]  # deceased persons cannot bind
        picked = random.Random(SEED).sample(rows, min(requests, len(rows)))
        with database.job() as session:
            accounts = [
                ResidentAccount(channel="wechat", external_id=f"bench-{i}")
                for i in range(len(picked))
            ]
            session.add_all(accounts)
            session.flush()
            tokens = [
                issue_token(secret_key=app.config["SECRET_KEY"], kind="resident", account_id=a.id)
                for a in accounts
            ]
        client = app.test_client()

        def bind_all() -> list[int]:
            households = []
            for row, token in zip(picked, tokens, strict=True):
                response = client.post(
                    "/api/v1/households/bind",
                    json={"id_number": row.id_number, "name": row.name},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 200, response.get_json()
                households.append(response.get_json()["id"])
            return households

        out["bind"], households = timed(bind_all)

        def premiums_all() -> None:
            for household, token in zip(households, tokens, strict=True):
                response = client.get(
                    f"/api/v1/households/{household}/premiums?year=2020",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 200, response.get_json()

        out["premiums"], _ = timed(premiums_all)
        if rotate:
            import base64

            installed.install(
                _real_keyring(
                    "b2:" + base64.b64encode(b"r" * 32).decode(),
                    "bi2:" + base64.b64encode(b"s" * 32).decode(),
                )
            )
            out["rotate"], rotated = timed(lambda: service.rotate(database.engine, batch=2_000))
            assert rotated.by_table["persons"] == report.created, rotated.by_table
    finally:
        database.dispose()
    return out


def _backend(backend: str, url_factory: Any, path: Path, requests: int) -> list[dict[str, Any]]:
    with url_factory() as url:
        plain = _run_mode(url, path, _plain_keyring(), requests, rotate=False)
    with url_factory() as url:
        enc = _run_mode(url, path, _real_keyring(), requests, rotate=True)
    persons = enc["persons"]
    base = "same run, encrypted type replaced by plain text (bench-only keyring)"
    rows = [
        result_row(
            "pii", "roster import, encrypted", backend=backend, n=persons, unit="s",
            value=enc["import"], baseline=base, baseline_value=plain["import"],
            target_ratio=2.0, better="lower",
            notes=f"{persons / enc['import']:,.0f} persons/s encrypted, "
            f"{persons / plain['import']:,.0f}/s plain",
        ),
        result_row(
            "pii", "binding, encrypted", backend=backend, n=requests, unit="req/s",
            value=requests / enc["bind"], baseline=base,
            baseline_value=requests / plain["bind"], target_ratio=0.77, better="higher",
            notes="Flask test client, one request at a time",
        ),
        result_row(
            "pii", "premiums page, encrypted", backend=backend, n=requests, unit="req/s",
            value=requests / enc["premiums"], baseline=base,
            baseline_value=requests / plain["premiums"], target_ratio=0.77,
            better="higher", notes="Flask test client, one request at a time",
        ),
    ]  # fmt: skip
    rows.append(
        {
            "bench": "pii",
            "name": "rotation (new data key and new index key)",
            "backend": backend,
            "n": persons,
            "unit": "persons/s",
            "value": round(persons / enc["rotate"], 1),
            "notes": f"{enc['rotate']:.1f} s for every person (batches of 2,000)",
        }
    )
    return rows


def run(args: Any = None) -> list[dict[str, Any]]:
    from contextlib import contextmanager

    from api.households.demo import generate_roster
    from api.households.roster_files import write_roster

    quick = bool(getattr(args, "quick", False))
    scale = float(os.environ.get("BENCH_PII_SCALE", 0.1 if quick else 1.0))
    requests = int(os.environ.get("BENCH_PII_REQUESTS", 500 if quick else 2_000))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-pii-") as tmp:
        path = Path(tmp) / "roster.csv"
        write_roster(path, generate_roster(scale, SEED, today=TODAY))
        if pg_available():
            rows += _backend("PostgreSQL", lambda: pg_database("bench_pii"), path, requests)
        else:
            rows.append(
                {"bench": "pii", "name": "pii", "backend": "PostgreSQL",
                 "skipped": "PostgreSQL unreachable"}
            )  # fmt: skip
        if os.environ.get("BENCH_PII_SQLITE"):
            counter = iter(range(100))

            @contextmanager
            def sqlite_url() -> Any:
                yield f"sqlite:///{tmp}/pii-{next(counter)}.sqlite3"

            rows += _backend("SQLite", sqlite_url, path, requests)
    return rows
