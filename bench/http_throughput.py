"""Resident read path under gunicorn: household premiums and the stateless quote, against the
trivial-route ceiling of the same gunicorn in the same run.

For each database (SQLite, and PostgreSQL when reachable) a fresh schema is migrated and the
demo district loaded through the contract commands (`flask --app wsgi db upgrade`, `demo load
--scale S`). R resident accounts are bound to R four-member households (a pension tier chosen
for every eligible member), and a token issued for each. The API runs under gunicorn with the
`make run` settings (gthread, 2 workers × 4 threads). A client with C keep-alive connections
(`http.client`, threads) sends N requests of each kind, bounded by a time limit, in R
interleaved rounds (ceiling, premiums, ceiling POST, quote, then again) so that noise from
other work on the machine falls on both sides of each ratio:

- ceiling GET: `GET /bench/trivial` (a Flask route answering a tiny JSON) — what gunicorn +
  Flask can do at all here; ceiling POST: `POST /bench/trivial` with the quote's body;
- premiums: `GET /api/v1/households/{id}/premiums?year=2020` with the bound resident's token
  (round-robin over the R households: token check, binding check, household load, policy
  rules, masking, serialisation);
- quote: `POST /api/v1/premiums/quote` with a 4-member household (ID validation, rules).

Every answer must be 200 (and the premiums one must name 4 members) or the run fails.
Reported per backend: requests/s, p50/p99 latency, and ratio to the ceiling (target ≥ 0.5).
The client shares the 2 cores with the server, so the ratio, not the rate, is the figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from bench.common import Gunicorn, start_gunicorn

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ROOT = Path(__file__).resolve().parent.parent
TRIVIAL_PATH = "/bench/trivial"
QUOTE_PATH = "/api/v1/premiums/quote"
TARGET_RATIO = 0.5
SECRET_KEY = "bench-secret-" + uuid.uuid4().hex
APP_TODAY = "2019-11-05"  # inside the 2020 concentrated payment phase
YEAR = 2020


def make_app() -> Any:
    """The gunicorn entry point: the real app plus a trivial route (the ceiling)."""
    from flask import jsonify

    from api import create_app

    app = create_app()

    @app.route(TRIVIAL_PATH, methods=["GET", "POST"])
    def trivial() -> Any:
        return jsonify({"ok": True})

    return app


# Data ------------------------------------------------------------------------------------------


def _env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "APP_TODAY": APP_TODAY,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "TZ": "Asia/Shanghai",
    }


def _flask(url: str, *args: str) -> None:
    subprocess.run(
        [str(Path(sys.executable).with_name("flask")), "--app", "wsgi", *args],
        cwd=ROOT,
        env=_env(url),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _populate(url: str, scale: float, residents: int) -> tuple[list[tuple[int, str]], int]:
    """Migrate, load the demo, bind `residents` accounts to 4-member households.

    Returns [(household_id, token)] and the number of persons in the district.
    """
    from sqlalchemy.orm import Session, selectinload

    from api import model_registry  # noqa: F401
    from api.auth.models import HouseholdBinding, ResidentAccount
    from api.auth.tokens import issue_token
    from api.households.models import Enrollment, Household, Person
    from api.policy import load_policy, rules
    from api.policy.rules import PersonFacts

    _flask(url, "db", "upgrade")
    _flask(url, "demo", "load", "--scale", str(scale))
    policy = load_policy(YEAR)
    engine = create_engine(url)
    pairs: list[tuple[int, str]] = []
    with Session(engine) as session:
        persons = session.scalar(select(func.count()).select_from(Person)) or 0
        four = (
            select(Person.household_id)
            .group_by(Person.household_id)
            .having(func.count() == 4)
            .order_by(Person.household_id)
            .limit(residents)
        )
        households = session.scalars(
            select(Household)
            .where(Household.id.in_(four))
            .options(selectinload(Household.members).selectinload(Person.categories))
        ).all()
        if not households:
            raise RuntimeError("the demo district has no four-member household")
        for n, household in enumerate(households):
            for person in household.members:
                facts = PersonFacts(
                    birth_date=person.birth_date,
                    categories=frozenset(c.category for c in person.categories),
                    student=person.student,
                    employee_pension=person.employee_pension,
                    deceased_on=person.deceased_on,
                )
                if rules.quote_member(policy, facts, policy.window_start).pension.eligible:
                    tier = 100 if 100 in rules.allowed_tiers(policy, facts.categories) else 500
                    session.add(
                        Enrollment(
                            person_id=person.id, insurance="pension", year=YEAR, pension_tier=tier
                        )
                    )
            account = ResidentAccount(channel="wechat", external_id=f"bench-openid-{n}")
            session.add(account)
            session.flush()
            session.add(
                HouseholdBinding(
                    account_id=account.id,
                    household_id=household.id,
                    person_id=household.members[0].id,
                )
            )
            token = issue_token(secret_key=SECRET_KEY, kind="resident", account_id=account.id)
            pairs.append((household.id, token))
        session.commit()
    engine.dispose()
    return pairs, persons


def _quote_body() -> bytes:
    """A four-member household: a couple with pension tiers, a 低保 grandmother, a child."""
    from datetime import date

    from api.policy.idnumber import make_id_number

    members = [
        (make_id_number("370406", date(1972, 3, 9), 131), "王建国", [], 500, False),
        (make_id_number("370406", date(1974, 8, 21), 242), "李秀英", [], 300, False),
        (make_id_number("370406", date(1946, 1, 30), 362), "张桂兰", ["dibao"], None, False),
        (make_id_number("370406", date(2008, 5, 2), 411), "王明", [], None, True),
    ]
    body = {
        "year": YEAR,
        "paid_on": APP_TODAY,
        "members": [
            {
                "id_number": id_number,
                "name": name,
                "categories": categories,
                "student": student,
                "employee_pension": False,
                "employee_medical": False,
                "pension_tier": tier,
            }
            for id_number, name, categories, tier, student in members
        ],
    }
    return json.dumps(body, ensure_ascii=False).encode()


# Server and load -------------------------------------------------------------------------------


def _start(url: str, workers: int, threads: int) -> Gunicorn:
    return start_gunicorn(
        "bench.http_throughput:make_app()",
        env=_env(url),
        workers=workers,
        threads=threads,
        cwd=ROOT,
    )


Request = tuple[str, str, bytes | None, dict[str, str]]


@dataclass
class LoadResult:
    count: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def merged(self, other: LoadResult) -> LoadResult:
        return LoadResult(
            count=self.count + other.count,
            seconds=self.seconds + other.seconds,
            latencies=self.latencies + other.latencies,
        )

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _load(
    port: int,
    make_request: Callable[[int], Request],
    check: Callable[[int, bytes], bool],
    *,
    n: int,
    clients: int,
    max_seconds: float,
) -> LoadResult:
    """Send up to `n` requests over `clients` keep-alive connections, stop after `max_seconds`."""
    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(n))
    lock = threading.Lock()
    gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        gate.wait()
        while time.perf_counter() < stop_at[0]:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            method, path, body, headers = make_request(i)
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            mine.append(time.perf_counter() - t0)
            if not check(response.status, data):
                failures.append(f"{method} {path}: {response.status} {data[:200]!r}")
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + max_seconds
    gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests, e.g. {failures[0]}")
    return LoadResult(count=len(latencies), seconds=elapsed, latencies=latencies)


def _row(
    name: str,
    backend: str,
    result: LoadResult,
    ceiling: LoadResult,
    *,
    workers: int,
    threads: int,
    clients: int,
    notes: str,
) -> dict[str, Any]:
    rps, baseline = result.rps, ceiling.rps
    return {
        "bench": "http_throughput",
        "name": name,
        "backend": backend,
        "n": result.count,
        "unit": "requests/s",
        "value": round(rps),
        "rps": round(rps),
        "p50_ms": round(result.pct_ms(0.50), 1),
        "p99_ms": round(result.pct_ms(0.99), 1),
        "baseline": (
            f"trivial route, same gunicorn ({workers}×{threads} gthread, {clients} clients)"
        ),
        "baseline_value": round(baseline),
        "baseline_rps": round(baseline),
        "baseline_p50_ms": round(ceiling.pct_ms(0.50), 1),
        "baseline_p99_ms": round(ceiling.pct_ms(0.99), 1),
        "ratio": round(rps / baseline, 2) if baseline else None,
        "target_ratio": TARGET_RATIO,
        "better": "higher",
        "notes": notes,
    }


def _bench(backend: str, url: str, settings: dict[str, Any]) -> list[dict[str, Any]]:
    n, clients = settings["n"], settings["clients"]
    workers, threads = settings["workers"], settings["threads"]
    max_seconds = settings["max_seconds"]
    pairs, persons = _populate(url, settings["scale"], settings["residents"])
    quote_body = _quote_body()
    json_headers = {"Content-Type": "application/json"}

    def trivial_get(_i: int) -> Request:
        return ("GET", TRIVIAL_PATH, None, {})

    def trivial_post(_i: int) -> Request:
        return ("POST", TRIVIAL_PATH, quote_body, json_headers)

    def premiums(i: int) -> Request:
        household_id, token = pairs[i % len(pairs)]
        path = f"/api/v1/households/{household_id}/premiums?year={YEAR}"
        return ("GET", path, None, {"Authorization": f"Bearer {token}"})

    def quote(_i: int) -> Request:
        return ("POST", QUOTE_PATH, quote_body, json_headers)

    def ok(status: int, _data: bytes) -> bool:
        return status == 200

    def four_members(status: int, data: bytes) -> bool:
        return status == 200 and len(json.loads(data)["members"]) == 4

    server = _start(url, workers, threads)
    run: dict[str, LoadResult] = {}
    try:
        load = {"clients": clients, "max_seconds": max_seconds}
        _load(server.port, premiums, four_members, n=min(300, n), **load)  # warm-up, all paths
        _load(server.port, quote, ok, n=min(300, n), **load)
        _load(server.port, trivial_get, ok, n=min(300, n), **load)
        # Interleaved rounds: on a shared, noisy machine a burst of someone else's work hits
        # the ceiling and the measured route alike instead of only one of them.
        rounds = settings["rounds"]
        chunk = {"clients": clients, "max_seconds": max_seconds / rounds}
        kinds = [
            ("ceiling_get", trivial_get, ok),
            ("premiums", premiums, four_members),
            ("ceiling_post", trivial_post, ok),
            ("quote", quote, ok),
        ]
        for _ in range(rounds):
            for key, make, check in kinds:
                part = _load(server.port, make, check, n=max(1, n // rounds), **chunk)
                run[key] = run[key].merged(part) if key in run else part
    finally:
        server.stop()
    common = {"workers": workers, "threads": threads, "clients": clients}
    district = f"demo district scale {settings['scale']} ({persons} persons)"
    return [
        _row(
            "GET /api/v1/households/{id}/premiums",
            backend,
            run["premiums"],
            run["ceiling_get"],
            notes=f"{district}, {len(pairs)} bound residents round-robin",
            **common,
        ),
        _row(
            "POST /api/v1/premiums/quote (4 members)",
            backend,
            run["quote"],
            run["ceiling_post"],
            notes="stateless; ceiling is a POST of the same body to the trivial route",
            **common,
        ),
    ]


def _pg_url() -> str | None:
    name = f"ssi_bench_http_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:  # unreachable server: the bench reports a skipped row
        return None
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _settings(args: Any) -> dict[str, Any]:
    quick = bool(getattr(args, "quick", False))

    def pick(attr: str, env: str, default: float) -> float:
        value = getattr(args, attr, None)
        return float(value if value is not None else os.environ.get(env, default))

    return {
        "n": int(pick("http_n", "BENCH_HTTP_N", 1000 if quick else 4000)),
        "clients": int(pick("http_clients", "BENCH_HTTP_CLIENTS", 8)),
        "max_seconds": pick("http_max_seconds", "BENCH_HTTP_MAX_SECONDS", 20 if quick else 60),
        "scale": pick("http_scale", "BENCH_HTTP_SCALE", 0.005 if quick else 0.01),
        "residents": int(pick("http_residents", "BENCH_HTTP_RESIDENTS", 200)),
        "workers": int(os.environ.get("WEB_WORKERS", 2)),
        "threads": int(os.environ.get("WEB_THREADS", 4)),
        "rounds": int(pick("http_rounds", "BENCH_HTTP_ROUNDS", 4)),
    }


def run(args: Any = None) -> list[dict[str, Any]]:
    """Rows of {bench, name, backend, rps, baseline_rps, ratio, p50_ms, p99_ms, …}."""
    settings = _settings(args)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.extend(_bench("SQLite", f"sqlite:///{tmp}/bench.sqlite3", settings))
    pg = _pg_url()
    if pg is None:
        rows.append(
            {
                "bench": "http_throughput",
                "name": "premiums/quote (PostgreSQL)",
                "skipped": "unreachable",
            }
        )
        return rows
    try:
        rows.extend(_bench("PostgreSQL", pg, settings))
    finally:
        _drop_pg(pg)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--http-n", type=int)
    parser.add_argument("--http-clients", type=int)
    parser.add_argument("--http-max-seconds", type=float)
    parser.add_argument("--http-scale", type=float)
    parser.add_argument("--http-residents", type=int)
    parser.add_argument("--http-rounds", type=int)
    for row in run(parser.parse_args()):
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
