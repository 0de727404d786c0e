"""Reconciliation reads one bill day among a season's orders through indexes, not a scan of
every order (bench/reconciliation.py found `paid_orders_between` and `paid_total_between`
scanning all of `payment_orders` at full scale; `ix_payment_orders_paid_at` serves them).

A season of 60,000 paid orders over 60 days is inserted with generate_series; the reads
`runs` makes for one day's bill are recorded (`before_cursor_execute`) and EXPLAINed, with no
statistics and after `ANALYZE` (the bulk writes' habit, api.db.analyze). PostgreSQL only.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, text

from api.payments import books
from tests.payments.factories import Member, make_household

DAY = date(2019, 11, 5)
_SEASON = """
INSERT INTO payment_orders (out_trade_no, channel, scene, household_id, year, insurances,
    amount_fen, description, status, late, priced_on, expires_at, client_ip, refunded_fen,
    paid_amount_fen, paid_at, transaction_id, created_at, updated_at)
SELECT 'SSIPLAN' || g, CASE WHEN g % 7 = 0 THEN 'alipay' ELSE 'wechat' END, 'miniprogram',
    :household, 2020, 'medical', 28000, '2020年城乡居民医疗保险费', 'paid', false,
    '2019-11-05', t + interval '30 minutes', '127.0.0.1', 0, 28000, t, '42' || g, t, t
FROM generate_series(1, 60000) g,
     LATERAL (SELECT timestamptz '2019-10-01 00:00+08' + (g % 60) * interval '1 day'
                     + (g % 86000) * interval '1 second' AS t) s
"""


@pytest.fixture
def pg_app(app: Flask, database_url: str) -> Flask:
    if not database_url.startswith("postgresql"):
        pytest.skip("plans are PostgreSQL's")
    return app


def _day_reads(session: Any) -> list[tuple[str, Any]]:
    """The statements of one day's reads (keys, total, the facts of a bill's worth of keys)."""
    sent: list[tuple[str, Any]] = []
    conn = session.connection()

    def remember(_c: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append((statement, params))

    event.listen(conn, "before_cursor_execute", remember)
    try:
        start, end = books.beijing_day(DAY)
        keys = books.paid_keys_between(session, "wechat", start, end)
        assert len(keys) == 857  # day 35 of 60: g = 35 (mod 60), not a multiple of 7
        assert books.paid_total_between(session, "wechat", start, end) == 857 * 28000
        assert len(books.orders_by_out_trade_no(session, keys)) == 857
    finally:
        event.remove(conn, "before_cursor_execute", remember)
    return sent


def test_a_bill_days_reads_do_not_scan_the_seasons_orders(pg_app: Flask, session: Any) -> None:
    household = make_household(session, [Member(date(1970, 4, 1))])
    session.execute(text(_SEASON), {"household": household.id})
    conn = session.connection()
    for analyzed in (False, True):
        if analyzed:
            conn.exec_driver_sql("ANALYZE payment_orders")
        for statement, params in _day_reads(session):
            if "= ANY" in statement:
                # The bill's keys: a cost judgement, not a defect. A hashed array of a few
                # thousand keys probed by one pass over the table costs less than as many
                # unique-index lookups, and the planner switches to the index as the season
                # grows (bench/README.md, "reconciliation").
                continue
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
            assert "Seq Scan on payment_orders" not in plan, (analyzed, statement, plan)
