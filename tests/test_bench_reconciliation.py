"""The reconciliation benchmark's district (bench/district_orders.py) must look like what the
product writes, or reconciling it measures something else: its items are what
`pricing.dues` prices for the household on the day it paid, and re-applying one of its orders
through `settlement.apply_payment` (what a notification does) writes the same contributions
and the same paid columns of the order (ids and creation times aside)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import _require_pg

DAY = date(2019, 11, 5)
_ITEM = (
    "person_id, insurance, year, amount_fen, government_pays_fen, subsidy_fen, pension_tier, "
    "late, rule, kind, benefit_start"
)
_CONTRIBUTION = (
    "person_id, household_id, insurance, year, amount_fen, government_pays_fen, subsidy_fen, "
    "pension_tier, source, order_id, out_trade_no, channel_transaction_id, paid_at, late, "
    "benefit_start, status, kind"
)
_ORDER = "status, paid_at, paid_amount_fen, transaction_id, amount_fen, refunded_fen"


@pytest.fixture
def bench_database() -> Iterator[str]:
    from bench.common import pg_available, pg_database

    if not pg_available():
        if _require_pg():
            pytest.fail("PostgreSQL required but unreachable")
        pytest.skip("PostgreSQL unreachable")
    with pg_database("ssi_recon_shape") as url:
        yield url


def _rows(session: Any, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in session.execute(text(sql), params)]


def test_the_benchmarks_orders_are_the_products(
    bench_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.households.demo import load_demo
    from api.payments import pricing
    from api.payments.channels.base import ChannelTrade, TradeState
    from api.payments.models import NotificationOutcome
    from api.payments.settlement import apply_payment
    from api.pii import keyring
    from bench.common import migrated_app
    from bench.district_orders import pay_district

    monkeypatch.setattr(keyring, "_installed", keyring._installed)  # the suite's keys after
    app = migrated_app(bench_database)
    db = app.extensions["database"]
    with app.app_context():
        with db.job() as session:
            load_demo(session, scale=0.002, seed=42, today=DAY)
            season = pay_district(session.connection(), bill_day=DAY, busy=40, seed=42)
        assert season.orders > 100 and len(season.busy) == 40 and season.enrollments > 0
        assert {"wechat", "alipay"} == {
            r[0] for r in _rows(db.session(), "SELECT DISTINCT channel FROM payment_orders")
        }
        db.session.remove()

        checked = 0
        orders = _rows(
            db.session(),
            "SELECT id, household_id, out_trade_no, channel, amount_fen, transaction_id, "
            "paid_at, priced_on FROM payment_orders ORDER BY id LIMIT 60",
        )
        db.session.remove()
        for order_id, household, out_trade_no, channel, amount, txn, paid_at, priced in orders:
            session = db.session()
            items = _rows(
                session,
                f"SELECT {_ITEM} FROM payment_order_items WHERE order_id = :o ORDER BY id",
                o=order_id,
            )
            contributions = _rows(
                session,
                f"SELECT {_CONTRIBUTION} FROM contributions WHERE order_id = :o "
                "ORDER BY order_item_id",
                o=order_id,
            )
            order = _rows(session, f"SELECT {_ORDER} FROM payment_orders WHERE id = :o", o=order_id)
            # Unpaid again: what the product prices, and what a notification then books.
            session.execute(text("DELETE FROM contributions WHERE order_id = :o"), {"o": order_id})
            session.execute(
                text(
                    "UPDATE payment_orders SET status = 'open', paid_at = NULL, "
                    "paid_amount_fen = NULL, transaction_id = NULL WHERE id = :o"
                ),
                {"o": order_id},
            )
            dues = pricing.dues(
                session,
                household_id=household,
                year=2020,
                on=date.fromisoformat(priced),
                insurances=["medical", "pension"],
            )
            priced_items = [
                (
                    d.person_id, d.insurance, d.year, d.amount_fen, d.government_pays_fen,
                    d.subsidy_fen, d.pension_tier, d.late, d.rule, d.kind, d.benefit_start,
                )
                for d in dues
            ]  # fmt: skip
            assert items == priced_items, out_trade_no
            trade = ChannelTrade(
                out_trade_no, TradeState.PAID, amount, txn, paid_at, None, None, None
            )
            applied = apply_payment(session, trade=trade, channel=channel, actor="test")
            assert applied.outcome == NotificationOutcome.APPLIED, applied
            assert (
                _rows(
                    session,
                    f"SELECT {_CONTRIBUTION} FROM contributions WHERE order_id = :o "
                    "ORDER BY order_item_id",
                    o=order_id,
                )
                == contributions
            ), out_trade_no
            assert (
                _rows(session, f"SELECT {_ORDER} FROM payment_orders WHERE id = :o", o=order_id)
                == order
            )
            session.rollback()
            db.session.remove()
            checked += 1
        assert checked == 60
    db.dispose()
