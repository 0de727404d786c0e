"""Progress against the targets 征缴进度 on the full-scale district, PostgreSQL.

A fresh schema gets the demo district (`load_demo`, scale 1.0 = 437,854 persons; `--quick` or
`BENCH_OVERSIGHT_SCALE` for less) and a year of contributions generated in bulk with one
INSERT … SELECT per kind, in the shape the product writes them (`Contribution`: person,
household, insurance, year, amount_fen + government_pays_fen, source, Beijing paid_at,
status, kind): medical 2020 for about 92 % of persons and pension 2020 for the 16–59-year-olds
not in school (two in three: 159,857 at full scale, the plan's target is 128,450), over the
collection days 10-26 … 12-20 across the five sources, 1 % of medical payments also
refunded (a reversed row beside the paid one), and pension 2019 for about 97 % of the 2020
pension payers (so about 3 % are new enrollees 新增). Then ANALYZE, as every bulk writer does.

Measured, interleaved, median of 5 after one warm-up each:
- the product: `api.oversight.progress.progress_report(level="town", as_of=window end)` —
  the grouped query (join to households and villages, the new-enrollee probe per pension
  row, Beijing day) plus the folding into towns × sources × phases × days and the forecast;
- the floor: one plain GROUP BY over the year's paid contributions (insurance, source,
  Beijing day: count and sum), no join, no probe, no Python.

Target: product ≤ 2 × floor, and under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import date
from typing import Any

from sqlalchemy import text

from bench.common import install_bench_keyring, migrated_app, pg_available, pg_database, result_row

AS_OF = date(2019, 12, 20)
SEED = 42
REPEATS = 5
FLOOR_SQL = """
SELECT insurance, source, (paid_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
       count(*), sum(amount_fen + government_pays_fen)
FROM contributions
WHERE year = 2020 AND status = 'paid'
GROUP BY insurance, source, day
"""
# Sources by person id: 40 % wechat, 15 % alipay, 30 % agent, 5 % counter, 10 % government.
_SOURCE = """CASE WHEN mod(p.id, 20) < 8 THEN 'wechat' WHEN mod(p.id, 20) < 11 THEN 'alipay'
    WHEN mod(p.id, 20) < 17 THEN 'agent' WHEN mod(p.id, 20) < 18 THEN 'counter'
    ELSE 'government' END"""
# Paid instants spread over 56 collection days from 10-26 00:00 Beijing, denser early on.
_PAID_AT = """timestamptz '2019-10-25 16:00:00+00'
    + floor(power(mod({salt} * p.id::bigint, 4838400), 2) / 4838400.0) * interval '1 second'"""
_INSERT = """
INSERT INTO contributions (person_id, household_id, insurance, year, amount_fen,
    government_pays_fen, subsidy_fen, pension_tier, source, paid_at, late, benefit_start,
    status, kind, reversed_at, created_at)
SELECT p.id, p.household_id, '{insurance}', {year},
    CASE WHEN {source} = 'government' THEN 0 ELSE {fen} END,
    CASE WHEN {source} = 'government' THEN {fen} ELSE 0 END,
    {subsidy}, {tier}, {source}, {paid_at}, false, date '{year}-01-01', '{status}', 'premium',
    {reversed_at}, now()
FROM persons p
WHERE {where}
"""
_PENSION_AGE = (
    "p.birth_date > date '1960-01-01' AND p.birth_date <= date '2004-01-01'"
    " AND NOT p.student AND NOT p.employee_pension AND mod(p.id, 3) <> 0"
)


def _insert(conn: Any, *, insurance: str, year: int, where: str, status: str = "paid") -> int:
    pension = insurance == "pension"
    sql = _INSERT.format(
        insurance=insurance,
        year=year,
        fen=30000 if pension else 26000,
        subsidy=3000 if pension else 0,
        tier=300 if pension else "NULL",
        source=_SOURCE,
        paid_at=_PAID_AT.format(salt=7919 if status == "paid" else 104729)
        if year == 2020
        else "timestamptz '2018-11-01 02:00:00+00'",
        status=status,
        reversed_at="now()" if status == "reversed" else "NULL",
        where=where,
    )
    return int(conn.execute(text(sql)).rowcount)


def _populate(app: Any, scale: float) -> dict[str, int]:
    from api.db import analyze, get_session
    from api.households.demo import load_demo

    with app.app_context():
        session = get_session()
        load_demo(session, scale=scale, seed=SEED, today=date(2019, 10, 1))
        session.commit()
        conn = session.connection()
        counts = {
            "medical": _insert(conn, insurance="medical", year=2020, where="mod(p.id, 13) <> 0"),
            "medical_refunded": _insert(
                conn, insurance="medical", year=2020, where="mod(p.id, 97) = 0", status="reversed"
            ),
            "pension": _insert(conn, insurance="pension", year=2020, where=_PENSION_AGE),
            "pension_2019": _insert(
                conn, insurance="pension", year=2019, where=f"{_PENSION_AGE} AND mod(p.id, 31) <> 0"
            ),
        }
        session.commit()
        analyze(session, "contributions", "households", "villages", "persons")
        session.commit()
        counts["persons"] = int(session.execute(text("SELECT count(*) FROM persons")).scalar_one())
        return counts


def run(args: Any = None) -> list[dict[str, Any]]:
    quick = bool(getattr(args, "quick", False))
    scale = float(os.environ.get("BENCH_OVERSIGHT_SCALE", 0.1 if quick else 1.0))
    name = "progress by town and day (district)"
    if not pg_available():
        return [result_row(bench="oversight", name=name, skipped="PostgreSQL unreachable")]
    install_bench_keyring()
    from api.auth.models import StaffAccount
    from api.db import get_session
    from api.oversight.progress import progress_report

    with pg_database("ssi_oversight") as url:
        app = migrated_app(url)
        try:
            load_start = time.perf_counter()
            counts = _populate(app, scale)
            load_s = time.perf_counter() - load_start
            with app.app_context():
                session = get_session()
                staff = StaffAccount(
                    username="bench-finance", display_name="bench", password_hash="x",
                    role="finance",
                )  # fmt: skip
                session.add(staff)
                session.commit()

                def product() -> dict[str, Any]:
                    report = progress_report(
                        session, staff=staff, level="town", as_of=AS_OF, year=2020
                    )
                    session.rollback()
                    return report

                def floor() -> list[Any]:
                    rows = session.execute(text(FLOOR_SQL)).all()
                    session.rollback()
                    return rows

                product(), floor()  # warm-up: caches, plans, policy files
                product_times, floor_times = [], []
                for _ in range(REPEATS):
                    t, report = _timed(product)
                    product_times.append(t)
                    t, floor_rows = _timed(floor)
                    floor_times.append(t)
                product_s = statistics.median(product_times)
                floor_s = statistics.median(floor_times)
                total = report["total"]
                assert total["medical"]["persons"] == counts["medical"], (total, counts)
                assert total["pension"]["persons"] == counts["pension"]
                assert sum(r[3] for r in floor_rows) == counts["medical"] + counts["pension"]
        finally:
            app.extensions["database"].dispose()
    new = total["pension"]["new_persons"]
    return [
        result_row(
            bench="oversight",
            name=name,
            backend="PostgreSQL",
            n=counts["persons"],
            unit="s",
            value=product_s,
            baseline="one plain GROUP BY over the year's contributions (same run)",
            baseline_value=floor_s,
            target_ratio=2.0,
            better="lower",
            notes=(
                f"target also < 1 s; {counts['medical']:,} medical + {counts['pension']:,} "
                f"pension contributions of 2020 ({counts['medical_refunded']:,} refunded "
                f"rows, {counts['pension_2019']:,} pension of 2019, {new:,} new enrollees); "
                f"load {load_s:.0f} s"
            ),
        )
    ]


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args()):
        print(row)


if __name__ == "__main__":
    main()
