"""Reconciliation of one busy day: 50,000 WeChat bill rows against the whole demo district.

On PostgreSQL (skipped when unreachable) a fresh database is migrated and gets the demo
district as the product loads it (`api.households.demo.load_demo`, scale 1.0: 437,854 persons
in 147,005 households; `--quick` 0.1), then a collection season written by
`bench.district_orders.pay_district`: one paid order per paying household (items and
contributions as the product writes them), 50,000 of them (`--quick` 5,000) paid through
WeChat on the bill day, the rest over the other open days through WeChat or Alipay. Both bulk
writes are followed by `ANALYZE`, as the product's bulk writes are (`api.db.analyze`). Then
the day's WeChat `ALL` bill in the vendor's layout, with a few faults so items are written:
one row in 500 one yuan high (`amount_mismatch`), one order in 5,000 left off the bill
(`missing_channel`) and as many rows of trades we never made (`unknown_trade`).

Measured, in the same run:

- the product: `api.reconciliation.runs.run(..., data=bill)` — parse, read our side, match,
  store the run with the raw file and its items;
- the floor: the same bill split into rows by a plain loop, loaded into a temporary table
  in one batch and joined to `payment_orders` in one plain SQL statement (what any
  reconciliation must at least do: read every row, find every order).

Each is measured BENCH_RECON_REPEAT times (default 3), interleaved (floor, product, floor,
product, ...; the stored run and its items are deleted between repeats, so each product run
does the whole work again); the row gives the best of each, the notes every pair (the first
pair is the cold one, right after the load). Target: product within 3× the floor, and under 30 s.

After the timed runs, every SELECT the product's first run sent is EXPLAINed and any
sequential scan of a table is reported. At full scale two are expected and right: the bill's
20,000-key chunks (`= ANY`) probe a hashed key array in one pass over `payment_orders`
(cheaper than 20,000 unique-index lookups while the season holds ~130,000 orders), and the
bill day's total reads 50,000 of them (40 %); an ordinary day's reads go through
`ix_payment_orders_paid_at` (tests/perf/test_reconciliation_plans.py).

There is no reuse of a loaded district between runs (bench/common has no such mechanism):
each run loads its own database, dropped afterwards, and prints how long that took.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import date
from typing import Any

from sqlalchemy import create_engine, event, text

from bench.common import migrated_app, pg_available, pg_database, result_row

DAY = date(2019, 11, 5)
ROWS = 50_000
SEED = 42
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
PAYMENT_TABLES = ("enrollments", "payment_orders", "payment_order_items", "contributions")


def _load(app: Any, scale: float, busy: int) -> tuple[float, Any]:
    """The demo district (the product's loader), then the season's orders; ANALYZE after each."""
    from api.db import analyze
    from api.households.demo import load_demo
    from bench.district_orders import pay_district

    db = app.extensions["database"]
    with app.app_context():
        began = time.perf_counter()
        with db.job() as session:
            report = load_demo(session, scale=scale, seed=SEED, today=DAY)
            analyze(session)  # as `flask demo load` does after its bulk write
        assert not report.bad_rows, report.errors[:5]
        with db.job() as session:
            season = pay_district(session.connection(), bill_day=DAY, busy=busy, seed=SEED)
            analyze(session, *PAYMENT_TABLES)
        return time.perf_counter() - began, season


def _faulty(n: int) -> tuple[bool, bool]:
    """(one yuan high, left off the bill) for the n-th busy order."""
    return n % 500 == 0, n % 5_000 == 2_500


def _bill(busy: list[Any]) -> tuple[bytes, dict[str, int]]:
    """The day's bill in WeChat's `ALL` layout, with the faults of `_faulty`; expected counts."""
    from api.clock import BEIJING

    lines = [HEADER]
    expected = {"matched": 0, "amount_mismatch": 0, "missing_channel": 0, "unknown_trade": 0}
    rows: list[tuple[str, str, str, int]] = []
    for n, order in enumerate(busy, 1):
        high, omitted = _faulty(n)
        if omitted:
            expected["missing_channel"] += 1
            continue
        expected["amount_mismatch" if high else "matched"] += 1
        at = order.paid_at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((at, order.transaction_id, order.out_trade_no, order.amount_fen + 100 * high))
    for k in range(expected["missing_channel"]):  # payments of trades we never made
        expected["unknown_trade"] += 1
        rows.append(("2019-11-05 12:00:00", f"42009{k:023d}", f"UNKNOWN{k:020d}", 12300))
    total = 0
    for at, transaction_id, out_trade_no, fen in sorted(rows):
        total += fen
        yuan = f"{fen // 100}.{fen % 100:02d}"
        cells = [
            at, "wx8888888888888888", "1900000109", "0", "", transaction_id, out_trade_no,
            "openid", "JSAPI", "SUCCESS", "OTHERS", "CNY", yuan, "0.00", "0", "0", "0.00",
            "0.00", "", "", "2020年城乡居民医疗保险费", "", "0.00000", "0.00%", yuan, "0.00", "",
        ]  # fmt: skip
        lines.append(",".join("`" + c for c in cells))
    lines.append(
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    )
    money = f"{total // 100}.{total % 100:02d}"
    lines.append(f"`{len(rows)},`{money},`0.00,`0.00,`0.00000,`{money},`0.00")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8"), expected


def _floor(url: str, bill: bytes) -> tuple[float, int]:
    """Split the bill by a plain loop, load it in one batch, join it to the orders once."""
    engine = create_engine(url)
    try:
        began = time.perf_counter()
        rows = []
        for line in bill.decode("utf-8").split("\r\n")[1:]:
            if not line.startswith("`"):
                break
            cells = line[1:].split(",`")
            rows.append({"no": cells[6], "fen": int(cells[24].replace(".", ""))})
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMP TABLE bill (no text, fen bigint) ON COMMIT DROP"))
            conn.execute(text("INSERT INTO bill (no, fen) VALUES (:no, :fen)"), rows)
            matched = conn.execute(
                text(
                    "SELECT count(*) FROM bill b JOIN payment_orders o "
                    "ON o.out_trade_no = b.no AND o.amount_fen = b.fen"
                )
            ).scalar_one()
        return time.perf_counter() - began, int(matched)
    finally:
        engine.dispose()


def _sizes(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: int(conn.execute(text(sql)).scalar_one())
                for name, sql in (
                    ("persons", "SELECT count(*) FROM persons"),
                    ("households", "SELECT count(*) FROM households"),
                    ("orders", "SELECT count(*) FROM payment_orders"),
                    ("items", "SELECT count(*) FROM payment_order_items"),
                    ("contributions", "SELECT count(*) FROM contributions"),
                    ("db_bytes", "SELECT pg_database_size(current_database())"),
                )
            }
    finally:
        engine.dispose()


_SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")


def _explain(url: str, statements: list[tuple[str, Any]]) -> list[str]:
    """EXPLAIN each distinct SELECT the product sent (with its first parameters); returns
    one line per statement: its table scans and the plan's top node."""
    engine = create_engine(url)
    seen: set[str] = set()
    lines: list[str] = []
    try:
        with engine.connect() as conn:
            driver: Any = conn.connection.driver_connection
            for statement, params in statements:
                if not statement.lstrip().upper().startswith("SELECT") or statement in seen:
                    continue
                seen.add(statement)
                with driver.cursor() as cursor:
                    cursor.execute("EXPLAIN " + statement, params)
                    plan = [row[0] for row in cursor.fetchall()]
                scans = sorted(set(_SEQ_SCAN.findall("\n".join(plan))))
                where = statement.split("FROM", 1)[1].split("WHERE", 1)[0].strip()[:60]
                verdict = f"SEQ SCAN of {', '.join(scans)}" if scans else "index-driven"
                lines.append(f"{verdict}: FROM {where} … | {plan[0].strip()[:90]}")
    finally:
        engine.dispose()
    return lines


def _forget_runs(url: str) -> None:
    """Drop the stored runs and items, so a repeat reconciles the day afresh."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in ("reconciliation_item_events", "reconciliation_items"):
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("DELETE FROM reconciliation_runs"))
    finally:
        engine.dispose()


def run(args: Any = None) -> list[dict[str, Any]]:
    quick = bool(getattr(args, "quick", False))
    scale = float(os.environ.get("BENCH_RECON_SCALE", 0.1 if quick else 1.0))
    repeat = int(os.environ.get("BENCH_RECON_REPEAT", 3))
    busy = ROWS // 10 if quick else ROWS
    name = f"reconcile {busy:,} WeChat bill rows, district at scale {scale:g} (PostgreSQL)"
    if not pg_available():
        return [{"bench": "reconciliation", "name": name, "skipped": "PostgreSQL unreachable"}]
    from api.reconciliation.runs import run as reconcile

    pairs: list[tuple[float, float]] = []
    with pg_database("ssi_recon") as url:
        app = migrated_app(url)
        load_s, season = _load(app, scale, busy)
        sizes = _sizes(url)
        bill, expected = _bill(season.busy)
        db = app.extensions["database"]
        sent: list[tuple[str, Any]] = []

        def remember(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
            sent.append((statement, params))

        for attempt in range(repeat):  # interleaved: floor, product, floor, product, ...
            if attempt:
                _forget_runs(url)
            floor_s, floor_matched = _floor(url, bill)
            assert floor_matched == expected["matched"], (floor_matched, expected)
            if attempt == 0:
                event.listen(db.engine, "before_cursor_execute", remember)
            with app.app_context():
                began = time.perf_counter()
                report = reconcile(db, app.config["SETTINGS"], "wechat", DAY, data=bill)
                product_s = time.perf_counter() - began
                db.session.remove()
            if attempt == 0:
                event.remove(db.engine, "before_cursor_execute", remember)
            counts = {k: v for k, v in report.counts.items() if v}
            assert counts == {k: v for k, v in expected.items() if v}, (counts, expected)
            pairs.append((product_s, floor_s))
        plans = _explain(url, sent)
        db.dispose()
    product_s, floor_s = min(p for p, _ in pairs), min(f for _, f in pairs)
    each = ", ".join(f"{p:.2f}/{f:.2f} ({p / f:.2f})" for p, f in pairs)
    ratio = product_s / floor_s
    verdict = "PASS" if ratio <= 3.0 and product_s < 30 else "FAIL"
    under_30 = "met" if product_s < 30 else "MISSED"
    summary = (
        f"database: {sizes['persons']:,} persons, {sizes['households']:,} households, "
        f"{sizes['orders']:,} orders ({sizes['items']:,} items), "
        f"{sizes['contributions']:,} contributions, "
        f"pg_database_size {sizes['db_bytes'] / 2**20:,.0f} MB; loaded in {load_s:.1f} s\n"
        f"bill: {len(bill):,} bytes, {report.bill_rows:,} rows; outcomes {counts}\n"
        f"product/floor seconds (ratio), {repeat} interleaved runs: {each}\n"
        f"best of {repeat}: product {product_s:.2f} s, floor {floor_s:.2f} s, ratio {ratio:.2f} "
        f"(target ≤ 3× and < 30 s): {verdict}\n"
        "product's reads, EXPLAINed:\n  " + "\n  ".join(plans)
    )
    print(summary, file=sys.stderr, flush=True)
    return [
        result_row(
            bench="reconciliation",
            name=name,
            n=busy,
            unit="s",
            value=product_s,
            baseline="bill rows loaded + one SQL join (same run)",
            baseline_value=floor_s,
            target_ratio=3.0,
            better="lower",
            notes=(
                f"best of {repeat} interleaved (product/floor s: {each}); < 30 s {under_30}; "
                f"{sizes['persons']:,} persons, "
                f"{sizes['households']:,} households, {sizes['orders']:,} orders, "
                f"{sizes['contributions']:,} contributions, "
                f"{sizes['db_bytes'] / 2**20:,.0f} MB; loaded in {load_s:.0f} s; "
                + ", ".join(f"{v} {k}" for k, v in counts.items() if k != "matched")
            ),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args()):
        print(row)


if __name__ == "__main__":
    main()
