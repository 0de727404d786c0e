"""Reconciliation of one busy day: 50,000 WeChat bill rows against a district's orders.

On PostgreSQL (skipped when unreachable) a fresh schema gets DISTRICT_ORDERS paid orders
spread over the collection period (50,000 of them, WeChat, on the bill day), and a WeChat
`ALL` bill of that day in the vendor's layout. Measured, in the same run:

- the product: `api.reconciliation.runs.run(..., data=bill)` — parse, read our side, match,
  store the run with the raw file (and the items: 0.2% of the rows carry a fault, so items
  are written too);
- the floor: the same bill split into rows by a plain loop, loaded into a temporary table
  in one batch and joined to `payment_orders` in one plain SQL statement (what any
  reconciliation must at least do: read every row, find every order).

Target: product within 3× the floor, and under 30 s. `--quick` uses a tenth of the sizes.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, insert, text

from bench.common import install_bench_keyring, migrated_app, pg_available, pg_database, result_row

DAY = date(2019, 11, 5)
ROWS = 50_000
DISTRICT_ORDERS = 150_000
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)


def _out_trade_no(n: int) -> str:
    return f"SSIBENCH{n:019d}"


def _populate(url: str, total: int, busy: int) -> None:
    """`total` paid orders of one household; orders 1..busy paid on DAY through WeChat."""
    from api.households.models import Household, Town, Village
    from api.payments.models import PaymentOrder

    install_bench_keyring()
    engine = create_engine(url)
    now = datetime.now(UTC)
    start = datetime(2019, 11, 4, 16, 0, tzinfo=UTC)  # DAY 00:00 Beijing
    with engine.begin() as conn:
        conn.execute(insert(Town).values(id=1, code="370406001", name="山城街道办"))
        conn.execute(insert(Village).values(id=1, town_id=1, code="370406001001", name="测试村"))
        conn.execute(
            insert(Household).values(id=1, village_id=1, household_no="H0000001", created_at=now)
        )
        batch: list[dict[str, Any]] = []
        for n in range(1, total + 1):
            on_day = n <= busy
            paid_at = (
                start + timedelta(seconds=n % 86_000)
                if on_day
                else start - timedelta(days=1 + n % 60, seconds=n % 80_000)
            )
            batch.append(
                {
                    "out_trade_no": _out_trade_no(n),
                    "channel": "wechat" if on_day or n % 2 else "alipay",
                    "scene": "miniprogram",
                    "household_id": 1,
                    "year": 2020,
                    "insurances": "medical",
                    "amount_fen": 28000,
                    "description": "2020年城乡居民医疗保险费",
                    "status": "paid",
                    "late": False,
                    "priced_on": "2019-11-05",
                    "expires_at": paid_at + timedelta(minutes=30),
                    "client_ip": "127.0.0.1",
                    "refunded_fen": 0,
                    "paid_amount_fen": 28000,
                    "paid_at": paid_at,
                    "transaction_id": f"42{n:026d}",
                    "created_at": paid_at,
                    "updated_at": paid_at,
                }
            )
            if len(batch) == 10_000:
                conn.execute(insert(PaymentOrder), batch)
                batch = []
        if batch:
            conn.execute(insert(PaymentOrder), batch)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def _bill(busy: int) -> bytes:
    """The day's bill: every busy order, one in 500 with 订单金额 one yuan off."""
    lines = [HEADER]
    for n in range(1, busy + 1):
        fen = 28000 + (100 if n % 500 == 0 else 0)
        yuan = f"{fen // 100}.{fen % 100:02d}"
        cells = [
            "2019-11-05 10:00:00", "wx8888888888888888", "1900000109", "0", "",
            f"42{n:026d}", _out_trade_no(n), "openid", "JSAPI", "SUCCESS", "OTHERS", "CNY",
            yuan, "0.00", "0", "0", "0.00", "0.00", "", "", "2020年城乡居民医疗保险费", "",
            "1.68000", "0.60%", yuan, "0.00", "",
        ]  # fmt: skip
        lines.append(",".join("`" + c for c in cells))
    lines.append(
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    )
    lines.append(f"`{busy},`0.00,`0.00,`0.00,`0.00,`0.00,`0.00")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


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


def run(args: Any = None) -> list[dict[str, Any]]:
    quick = bool(getattr(args, "quick", False))
    busy = ROWS // 10 if quick else ROWS
    total = DISTRICT_ORDERS // 10 if quick else DISTRICT_ORDERS
    name = f"reconcile {busy:,} WeChat bill rows vs {total:,} orders (PostgreSQL)"
    if not pg_available():
        return [{"bench": "reconciliation", "name": name, "skipped": "PostgreSQL unreachable"}]
    with pg_database("ssi_recon") as url:
        app = migrated_app(url)
        _populate(url, total, busy)
        bill = _bill(busy)
        floor_s, floor_matched = _floor(url, bill)
        from api.reconciliation.runs import run as reconcile

        with app.app_context():
            db = app.extensions["database"]
            began = time.perf_counter()
            report = reconcile(db, app.config["SETTINGS"], "wechat", DAY, data=bill)
            product_s = time.perf_counter() - began
            db.session.remove()
            db.dispose()
    mismatched = busy // 500
    assert report.counts["matched"] == busy - mismatched, report.counts
    assert report.counts["amount_mismatch"] == mismatched
    assert floor_matched == busy - mismatched
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
            notes=f"target also < 30 s; {report.counts['amount_mismatch']} amount_mismatch items",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args()):
        print(row)


if __name__ == "__main__":
    main()
