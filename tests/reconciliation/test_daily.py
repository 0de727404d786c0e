"""The worker's daily job: yesterday's bills after 10:00 Beijing, once, retried (politely)
while a bill is not ready or the channel is down. The channel is replaced by a stub here;
the real bills are covered by the sandbox tests."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from api.clock import BEIJING
from api.payments import books
from api.payments.channels import ChannelError
from api.reconciliation import daily
from api.reconciliation.models import ReconciliationRun

YESTERDAY = date(2026, 12, 4)
EMPTY_WECHAT_BILL = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态\r\n"
    "总交易单数,应结订单总金额\r\n`0,`0.00\r\n"
).encode()


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 12, 5, hour, minute, tzinfo=BEIJING)


def test_yesterday_once_after_ten_retrying_while_not_ready(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, date]] = []
    answers: dict[str, Any] = {"wechat": ChannelError("down", code="http_503", retryable=True),
                               "alipay": None}  # fmt: skip

    def fetch(settings: Any, channel: str, day: date) -> bytes | None:
        calls.append((channel, day))
        answer = answers[channel]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    monkeypatch.setattr(books, "fetch_bill", fetch)
    monkeypatch.setattr(daily, "_next_try", {})
    db = app.extensions["database"]
    settings = app.config["SETTINGS"]
    with app.app_context():
        assert daily.run_due(db, settings, now=at(9, 59)) == {}
        assert calls == []
        # 10:01: WeChat is down; Alipay has no bill yet — D's bill is due from 09:00 on D+1,
        # so "no bill" now means an empty day and the Alipay run completes.
        assert daily.run_due(db, settings, now=at(10, 1)) == {"unavailable": 1, "reconciled": 1}
        assert calls == [("wechat", YESTERDAY), ("alipay", YESTERDAY)]
        # The next rounds do not hammer the gateway, nor redo Alipay.
        assert daily.run_due(db, settings, now=at(10, 2)) == {"waiting": 1, "done": 1}
        assert len(calls) == 2
        answers["wechat"] = EMPTY_WECHAT_BILL
        assert daily.run_due(db, settings, now=at(10, 12)) == {"reconciled": 1, "done": 1}
        assert daily.run_due(db, settings, now=at(15, 0)) == {"done": 2}
        assert len(calls) == 3
        session = db.session()
        runs = session.scalar(select(func.count()).select_from(ReconciliationRun))
        assert runs == 2


def test_a_bill_not_ready_before_nine_is_retried(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(books, "fetch_bill", lambda *_: None)
    monkeypatch.setattr(daily, "_next_try", {})
    db = app.extensions["database"]
    settings = app.config["SETTINGS"]
    with app.app_context():
        # An hour set earlier than the bill's 09:00 shows "no bill" as "not ready", not empty.
        monkeypatch.setattr(settings, "RECONCILE_DAILY_HOUR", 0, raising=False)
        assert daily.run_due(db, settings, now=at(8, 0)) == {"not_ready": 2}
        assert db.session().scalar(select(func.count()).select_from(ReconciliationRun)) == 0
