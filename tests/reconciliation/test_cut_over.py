"""Day cut-over (日切): a payment our books date D that the channel billed on D+1 is carried
over when D's run can already see D+1's bill; one on neither bill goes to the suspense pool.
Channel stubbed (`books.fetch_bill`); both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from api.clock import BEIJING
from api.payments import books
from api.reconciliation.models import ReconciliationItem
from api.reconciliation.runs import run
from tests.payments.factories import Member, make_household, make_order

D = date(2026, 12, 3)
HEADER = "交易时间,商户订单号,交易状态,订单金额"


def _bill(*orders: tuple[str, int]) -> bytes:
    rows = [HEADER] + [f"`2026-12-03 23:59:59,`{no},`SUCCESS,`{fen // 100}.{fen % 100:02d}"
                       for no, fen in orders]  # fmt: skip
    return ("\r\n".join(rows) + "\r\n").encode()


def test_cut_over_is_carried_over_and_the_rest_goes_to_suspense(
    app: Flask, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    household = make_household(session, [Member(date(1980, 1, 1))])
    paid_at = datetime(2026, 12, 3, 23, 59, 59, tzinfo=BEIJING).astimezone(UTC)
    numbers = []
    for _ in range(3):
        order = make_order(session, household, status="paid")
        order.paid_at, order.paid_amount_fen = paid_at, order.amount_fen
        numbers.append((order.out_trade_no, order.amount_fen))
    session.commit()
    on_time, late, lost = numbers
    bills = {D: _bill(on_time), D + timedelta(days=1): _bill(late)}
    monkeypatch.setattr(books, "fetch_bill", lambda _s, _c, day: bills.get(day))

    now = datetime(2026, 12, 5, 10, 0, tzinfo=BEIJING)  # D+1's bill is due too
    report = run(app.extensions["database"], app.config["SETTINGS"], "wechat", D, now=now)
    assert report.counts["matched"] == 1 and report.counts["missing_channel"] == 2
    items = {i.key: i for i in session.scalars(select(ReconciliationItem))}
    assert (items[late[0]].status, items[late[0]].resolution) == ("resolved", "carried_over")
    assert (items[lost[0]].status, items[lost[0]].resolution) == ("open", None)
