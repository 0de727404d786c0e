"""Notification throughput: genuine payment notifications applied per second, against the
trivial-route ceiling of the same gunicorn in the same run.

For each database (SQLite, and PostgreSQL when reachable) a fresh schema gets N households,
each with an open WeChat order (2 medical items + 1 pension item, so every notification
books three contributions and three tax records), plus last year's contributions of every
person, then ANALYZE: the tables look like a district's in service, not an empty schema.
The API runs under gunicorn with the `make run` settings (gthread, 2 workers × 4 threads);
a client with C keep-alive connections posts:

Both are measured in interleaved rounds (ceiling, notify, ceiling, notify…; 4 by default).

- ceiling: the same signed XML body to a trivial route of the same app (`POST /bench/trivial`,
  answers "ok") — what gunicorn + Flask can do at all on this machine;
- notify: each order's genuine WeChat Pay v2 notification (MD5-signed, PROTOCOLS.md §1.5) to
  `POST /api/v1/payments/notify/wechat` — store raw, verify, apply, commit, reply.

On PostgreSQL a third route is measured in the same rounds, on N orders of its own:

- floor: `POST /bench/floor/notify/wechat` (bench/notify_floor.py), the same contract done with
  the least work possible in this stack (raw psycopg, four round trips, one write statement):
  not a product route, but the bound on what any implementation could reach on this machine.

Every reply must be the exact success XML and the database must hold exactly 3 contributions
per order afterwards, or the run fails. Reported: requests/s, p50/p99 latency, and
notify / ceiling (target ≥ 0.35 on PostgreSQL). The client shares the 2 cores with the server
in both measurements, so the ratio, not the absolute rate, is the figure to compare.
"""

from __future__ import annotations

import argparse
import http.client
import os
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text

from bench.common import (
    Gunicorn,
    install_bench_keyring,
    pg_available,
    pg_database,
    result_row,
    start_gunicorn,
)
from bench.notify_floor import FLOOR_PATH

ROOT = Path(__file__).resolve().parent.parent
NOTIFY_PATH = "/api/v1/payments/notify/wechat"
TRIVIAL_PATH = "/bench/trivial"
TARGET_RATIO = 0.35


def make_app() -> Any:
    """The gunicorn entry point: the real app plus a trivial route (the ceiling)."""
    from flask import Response

    from api import create_app

    app = create_app()
    url = app.config["SETTINGS"].DATABASE_URL
    if url.startswith("postgresql"):
        from bench.notify_floor import register

        register(app, url)

    @app.post(TRIVIAL_PATH)
    def trivial() -> Response:
        return Response(b"ok", content_type="text/plain")

    return app


# Data ------------------------------------------------------------------------------------------


def _id_number(n: int) -> str:
    """A distinct GB 11643 ID number per person (the tax record's schema checks the shape)."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    birth = date(1950, 1, 1) + timedelta(days=n // 1000)
    body = f"370406{birth:%Y%m%d}{n % 1000:03d}"
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def _populate(url: str, n: int) -> list[tuple[str, int]]:
    """N households with an open order each; returns (out_trade_no, amount_fen) per order."""
    from api import model_registry  # noqa: F401
    from api.db import Base
    from api.households.models import ID_NUMBER_INDEX, Household, Person, Town, Village
    from api.payments.models import Contribution, OrderItem, PaymentOrder
    from api.pii.types import blind_index

    install_bench_keyring()  # the app the benchmark starts reads these rows with the bench keys

    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6].upper()
    orders: list[tuple[str, int]] = []
    with engine.begin() as conn:
        conn.execute(insert(Town).values(id=1, code="370406001", name="山城街道办"))
        conn.execute(insert(Village).values(id=1, town_id=1, code="370406001001", name="测试村"))
        conn.execute(
            insert(Household),
            [
                {"id": h, "village_id": 1, "household_no": f"H{h:07d}", "created_at": now}
                for h in range(1, n + 1)
            ],
        )
        persons, order_rows, items = [], [], []
        for h in range(1, n + 1):
            for k in (0, 1):
                pid = 2 * h - 1 + k
                persons.append(
                    {
                        "id": pid,
                        "household_id": h,
                        "id_number": _id_number(pid),
                        "id_number_index": blind_index(_id_number(pid), ID_NUMBER_INDEX),
                        "name": "张三" if k == 0 else "李四",
                        "birth_date": date(1970, 1, 1),
                        "sex": "1" if k == 0 else "2",
                        "student": False,
                        "employee_pension": False,
                        "employee_medical": False,
                        "residence_permit": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            out_trade_no = f"SSIB{run}{h:010d}"
            amount = 28000 + 28000 + 30000
            orders.append((out_trade_no, amount))
            order_rows.append(
                {
                    "id": h,
                    "out_trade_no": out_trade_no,
                    "channel": "wechat",
                    "scene": "miniprogram",
                    "household_id": h,
                    "year": 2020,
                    "insurances": "medical,pension",
                    "amount_fen": amount,
                    "description": "2020年城乡居民医疗保险费、城乡居民养老保险费",
                    "status": "open",
                    "late": False,
                    "priced_on": "2019-11-05",
                    "expires_at": now + timedelta(hours=2),
                    "client_ip": "127.0.0.1",
                    "refunded_fen": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            for pid, insurance, fen, tier, subsidy in (
                (2 * h - 1, "medical", 28000, None, 0),
                (2 * h, "medical", 28000, None, 0),
                (2 * h - 1, "pension", 30000, 300, 3000),
            ):
                items.append(
                    {
                        "order_id": h,
                        "person_id": pid,
                        "insurance": insurance,
                        "year": 2020,
                        "amount_fen": fen,
                        "government_pays_fen": 0,
                        "subsidy_fen": subsidy,
                        "pension_tier": tier,
                        "late": False,
                        "rule": "standard",
                    }
                )
        conn.execute(insert(Person), persons)
        conn.execute(insert(PaymentOrder), order_rows)
        conn.execute(insert(OrderItem), items)
        conn.execute(insert(Contribution), _last_year(persons, now))
        tables = ("households", "persons", "payment_orders", "payment_order_items", "contributions")
        if engine.dialect.name == "postgresql":
            for table in tables:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return orders


def _last_year(persons: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Every person's 2019 medical premium, paid at the agent's: a district in service has last
    year's contributions in the table (and statistics on it). Without them the planner sees an
    empty `contributions` table and a seq scan looks as good as the paid-premium index."""
    paid_at = datetime(2018, 12, 1, 2, 0, tzinfo=UTC)
    return [
        {
            "person_id": person["id"],
            "household_id": person["household_id"],
            "insurance": "medical",
            "year": 2019,
            "amount_fen": 25000,
            "government_pays_fen": 0,
            "subsidy_fen": 0,
            "pension_tier": None,
            "source": "agent",
            "paid_at": paid_at,
            "late": False,
            "benefit_start": date(2019, 1, 1),
            "status": "paid",
            "created_at": now,
        }
        for person in persons
    ]


def _bodies(orders: list[tuple[str, int]]) -> list[bytes]:
    from api.config import Config
    from tests.payments.gateway_messages import wechat_v2_payment

    settings = Config.from_env({})
    return [
        wechat_v2_payment(
            settings,
            out_trade_no=no,
            amount_fen=amount,
            transaction_id=f"42000005402020{i:014d}",
        )
        for i, (no, amount) in enumerate(orders)
    ]


# Server and client ----------------------------------------------------------------------------


def _start(url: str, workers: int, threads: int) -> Gunicorn:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "TZ": "Asia/Shanghai",
    }
    return start_gunicorn(
        "bench.notify_throughput:make_app()", env=env, workers=workers, threads=threads, cwd=ROOT
    )


def _load(
    port: int, path: str, bodies: list[bytes], clients: int
) -> tuple[float, list[float], list[bytes]]:
    """POST every body once over `clients` keep-alive connections; (seconds, latencies, replies)."""
    latencies: list[float] = [0.0] * len(bodies)
    replies: list[bytes] = [b""] * len(bodies)
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start_gate.wait()
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            t0 = time.perf_counter()
            conn.request("POST", path, body=bodies[i], headers={"Content-Type": "text/xml"})
            response = conn.getresponse()
            replies[i] = response.read()
            latencies[i] = time.perf_counter() - t0
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, replies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _bench(
    label: str, url: str, n: int, clients: int, workers: int, threads: int, rounds: int = 4
) -> list[dict[str, Any]]:
    from api.payments.channels import wechat_v2_protocol as proto

    # On PostgreSQL a second set of orders for the floor route (bench/notify_floor.py).
    floor = label == "PostgreSQL"
    bodies = _bodies(_populate(url, 2 * n if floor else n))
    bodies, floor_bodies = bodies[:n], bodies[n:]
    server = _start(url, workers, threads)
    runs: dict[str, _Run] = {path: _Run() for path in (TRIVIAL_PATH, NOTIFY_PATH, FLOOR_PATH)}
    try:
        _load(server.port, TRIVIAL_PATH, bodies[: min(200, n)], clients)  # warm-up
        # Interleaved rounds (ceiling, notifications, floor, ceiling, …): a burst of someone
        # else's work on this shared machine then weighs on every side of the ratio alike.
        step = -(-n // rounds)
        for start in range(0, n, step):
            window = slice(start, start + step)
            runs[TRIVIAL_PATH].add(*_load(server.port, TRIVIAL_PATH, bodies[window], clients))
            runs[NOTIFY_PATH].add(*_load(server.port, NOTIFY_PATH, bodies[window], clients))
            if floor:
                runs[FLOOR_PATH].add(*_load(server.port, FLOOR_PATH, floor_bodies[window], clients))
    finally:
        server.stop()
    bad = sum(
        1
        for path in (NOTIFY_PATH, FLOOR_PATH)
        for r in runs[path].replies
        if r != proto.SUCCESS_XML
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        from api.payments.models import Contribution

        booked = conn.scalar(
            select(func.count()).select_from(Contribution).where(Contribution.year == 2020)
        )
    engine.dispose()
    expected = 3 * n * (2 if floor else 1)
    if bad or booked != expected:
        raise RuntimeError(f"{label}: {bad} bad replies, {booked} contributions, not {expected}")
    ceiling = runs[TRIVIAL_PATH]
    setting = f"trivial route, same gunicorn ({workers}×{threads} gthread, {clients} clients)"

    def row(name: str, run: _Run, notes: str, target: float | None) -> dict[str, Any]:
        answer = result_row(
            "notify_throughput",
            name,
            backend=label,
            n=n,
            unit="notifications/s",
            value=n / run.seconds,
            baseline=setting,
            baseline_value=n / ceiling.seconds,
            target_ratio=TARGET_RATIO,
            notes=notes,
        )
        answer["p50_ms"], answer["p99_ms"] = run.percentiles()
        answer["target_ratio"] = target
        return answer

    notify = runs[NOTIFY_PATH]
    rows = [
        row(
            "genuine WeChat Pay v2 notifications → paid (verify + apply + reply)",
            notify,
            f"{notify.latency()} (ceiling {ceiling.latency()})"
            + ("" if floor else "; target set for PostgreSQL only"),
            TARGET_RATIO if floor else None,
        )
    ]
    if floor:
        least = runs[FLOOR_PATH]
        rows.append(
            row(
                "floor: the same contract's least work (raw psycopg, 4 round trips; "
                "bench/notify_floor.py)",
                least,
                f"{least.latency()}; what any implementation in this stack could reach here, "
                "not a product route",
                None,
            )
        )
    return rows


class _Run:
    """One route's rounds, added up: seconds, latencies and replies."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.latencies: list[float] = []
        self.replies: list[bytes] = []

    def add(self, seconds: float, latencies: list[float], replies: list[bytes]) -> None:
        self.seconds += seconds
        self.latencies += latencies
        self.replies += replies

    def percentiles(self) -> tuple[float, float]:
        return round(_pct(self.latencies, 0.50), 1), round(_pct(self.latencies, 0.99), 1)

    def latency(self) -> str:
        p50, p99 = self.percentiles()
        return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"


def run(args: Any = None) -> list[dict[str, Any]]:
    """Rows (bench.common.result_row) for SQLite and PostgreSQL, with p50/p99 latency."""
    quick = bool(getattr(args, "quick", False))
    n = int(
        getattr(args, "notify_n", None) or os.environ.get("BENCH_NOTIFY_N", 500 if quick else 3000)
    )
    clients = int(
        getattr(args, "notify_clients", None) or os.environ.get("BENCH_NOTIFY_CLIENTS", 8)
    )
    workers = int(os.environ.get("WEB_WORKERS", 2))
    threads = int(os.environ.get("WEB_THREADS", 4))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += _bench("SQLite", f"sqlite:///{tmp}/bench.sqlite3", n, clients, workers, threads)
    if not pg_available():
        rows.append({"bench": "notify_throughput", "name": "PostgreSQL", "skipped": "unreachable"})
        return rows
    with pg_database("bench_notify") as url:
        rows += _bench("PostgreSQL", url, n, clients, workers, threads)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notify-n", type=int, default=3000)
    parser.add_argument("--notify-clients", type=int, default=8)
    for row in run(parser.parse_args()):
        print(row)


if __name__ == "__main__":
    main()
