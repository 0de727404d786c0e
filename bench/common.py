"""Shared pieces of the benchmarks: result rows, throw-away databases, the results files.

A benchmark module exposes `run(args) -> list[dict]`; each dict is one result row:

    bench           short name of the benchmark module ("roster_import", "relay", ...)
    name            what was measured
    backend         optional: "SQLite" / "PostgreSQL" (some benches put it in `name`)
    n               how many items (persons, requests, records)
    unit            unit of `value` ("s", "records/s", ...)
    value           the measurement
    baseline        what the measurement is compared with, measured IN THE SAME RUN
    baseline_value  the baseline's measurement, same unit
    ratio           value / baseline_value
    target_ratio    the goal for `ratio`
    better          "higher" (default: throughputs) or "lower" (durations)
    notes           optional free text
    skipped         instead of the figures: why the row could not be measured

Ratios against a baseline of the same run keep the comparison honest on a noisy shared box.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# Fixed benchmark keys (api/pii): the benchmarks' throw-away databases only. Exported so the
# processes a benchmark starts (gunicorn, workers) build their apps with the same keys.
BENCH_PII_KEYS = "b1:YmVuY2gtcGlpLWRhdGEta2V5LTMyLWJ5dGVzLWxvbmc="
BENCH_PII_INDEX_KEYS = "bi1:YmVuY2gtcGlpLWluZGV4LWtleS0zMi1ieXRlcy1sb24="
os.environ.setdefault("PII_KEYS", BENCH_PII_KEYS)
os.environ.setdefault("PII_INDEX_KEYS", BENCH_PII_INDEX_KEYS)


def install_bench_keyring() -> None:
    """Install the benchmark keys in this process (for rows a benchmark writes itself)."""
    from api.pii.crypto import Keyring
    from api.pii.keyring import install, parse_keys

    install(
        Keyring(
            parse_keys(BENCH_PII_KEYS, "PII_KEYS"),
            parse_keys(BENCH_PII_INDEX_KEYS, "PII_INDEX_KEYS"),
        )
    )


PG_ADMIN_URL = os.environ.get(
    "TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RESULTS = Path(__file__).parent / "results"

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Wall-clock seconds of `fn()` and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def result_row(
    bench: str,
    name: str,
    *,
    n: int,
    unit: str,
    value: float,
    baseline: str,
    baseline_value: float,
    target_ratio: float,
    better: str = "higher",
    backend: str | None = None,
    notes: str = "",
) -> dict[str, Any]:
    row: dict[str, Any] = {"bench": bench, "name": name}
    if backend:
        row["backend"] = backend
    row.update(
        n=n,
        unit=unit,
        value=round(value, 3),
        baseline=baseline,
        baseline_value=round(baseline_value, 3),
        ratio=round(value / baseline_value, 2) if baseline_value else None,
        target_ratio=target_ratio,
        better=better,
    )
    if notes:
        row["notes"] = notes
    return row


def meets_target(row: dict[str, Any]) -> bool | None:
    ratio, target = row.get("ratio"), row.get("target_ratio")
    if ratio is None or target is None:
        return None
    return bool(ratio <= target) if row.get("better") == "lower" else bool(ratio >= target)


def pg_available() -> bool:
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # unreachable server: the bench reports a skipped row
        return False
    finally:
        engine.dispose()


@contextmanager
def pg_database(prefix: str = "bench") -> Iterator[str]:
    """A throw-away PostgreSQL database, created here and dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrated_app(url: str) -> Any:
    """An app on `url` with the schema built by the migrations (as production builds it)."""
    import flask_migrate

    from api import create_app
    from api.config import Config

    app = create_app(
        Config.from_env(
            {},
            DATABASE_URL=url,
            LOG_LEVEL="WARNING",
            PII_KEYS=BENCH_PII_KEYS,
            PII_INDEX_KEYS=BENCH_PII_INDEX_KEYS,
        )
    )
    with app.app_context():
        flask_migrate.upgrade()
    return app


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    if pg_available():
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            info["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
        engine.dispose()
    return info


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and unit == "s":
        return f"{value:.2f} s"
    if isinstance(value, int | float):
        return f"{value:,.0f} {unit}".strip() if abs(value) >= 100 else f"{value:g} {unit}".strip()
    return str(value)


def table_lines(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Rows as table cells: name, backend, measured, baseline, ratio, notes."""
    lines = []
    for row in rows:
        if "skipped" in row:
            lines.append([row["name"], row.get("backend", ""), "skipped", "", "", row["skipped"]])
            continue
        unit = row.get("unit", "")
        target = row.get("target_ratio")
        sign = "≤" if row.get("better") == "lower" else "≥"
        verdict = {True: "ok", False: "MISSED", None: ""}[meets_target(row)]
        ratio = f"{row.get('ratio')}" + (f" (target {sign} {target}, {verdict})" if target else "")
        lines.append(
            [
                row["name"],
                row.get("backend", ""),
                _fmt(row.get("value"), unit),
                f"{row.get('baseline', '')}: {_fmt(row.get('baseline_value'), unit)}",
                ratio,
                row.get("notes", ""),
            ]
        )
    return lines


HEADERS = ["name", "backend", "measured", "baseline", "ratio", "notes"]


def print_table(rows: list[dict[str, Any]]) -> None:
    lines = table_lines(rows)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(HEADERS)]
    print("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for line in table_lines(rows):
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |")
    return "\n".join(out) + "\n"


def write_results(rows: list[dict[str, Any]], *, args: dict[str, Any]) -> Path:
    """Write results/latest.json and latest.md; rows of benches not run this time are kept
    from the previous file (so `--only relay` does not erase the roster figures)."""
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / "latest.json"
    ran = {r["bench"] for r in rows}
    kept: list[dict[str, Any]] = []
    if target.exists():
        try:
            previous = json.loads(target.read_text(encoding="utf-8"))
            kept = [r for r in previous.get("rows", []) if r.get("bench") not in ran]
        except (json.JSONDecodeError, AttributeError):
            kept = []
    document: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "args": args,
        "rows": kept + rows,
    }
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(target)
    md = RESULTS / "latest.md"
    header = (
        f"Benchmarks, {document['generated_at']} on {document['machine']['cpus']} CPUs "
        f"(Python {document['machine']['python']}, SQLite {document['machine']['sqlite']}, "
        f"PostgreSQL {document['machine'].get('postgresql', 'n/a')}).\n\n"
    )
    md.write_text(header + markdown_table(document["rows"]), encoding="utf-8")
    return target


# Gunicorn under test -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Gunicorn:
    """A gunicorn serving the app under test; `stop()` ends it (TERM, then KILL)."""

    process: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_gunicorn(
    app_spec: str, *, env: dict[str, str], workers: int, threads: int, cwd: Path
) -> Gunicorn:
    """Start gunicorn on a free loopback port and wait until `/health` answers 200.

    Every HTTP benchmark serves its measured route and its trivial ceiling route through this
    one function, so both always run under the same server settings.
    """
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "--config",
            str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
            app_spec,
        ],
        cwd=cwd,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return Gunicorn(process, port)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not start")
