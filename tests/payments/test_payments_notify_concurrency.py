"""20 copies of one genuine notification at once, over real HTTP, on PostgreSQL.

WeChat warns that one notification "may be sent by several servers within a few seconds"
(PROTOCOLS.md §1.5). SQLite's single writer would serialize the copies and hide a race, so
this runs against PostgreSQL with a threaded server: every copy must get the success reply,
and exactly one set of contributions and tax records may exist afterwards.
"""

from __future__ import annotations

import threading
from datetime import date

import requests
from sqlalchemy import func, select

from api.payments.channels import wechat_v2_protocol as proto
from api.payments.models import ChannelNotification, Contribution, OrderStatus, PaymentOrder
from api.payments.outbox import OutboxMessage
from tests.payments.factories import Member, make_household, make_order
from tests.payments.gateway_messages import wechat_v2_payment

COPIES = 20


def test_twenty_concurrent_copies_apply_exactly_once(pg_live_api) -> None:
    app = pg_live_api.app
    db = app.extensions["database"]
    with app.app_context():
        session = db.session()
        family = make_household(
            session,
            [Member(date(1970, 1, 1), pension_tier=500), Member(date(1972, 2, 2))],
        )
        adult, spouse = family.members
        order = make_order(
            session,
            family,
            items=[
                (adult, "medical", 28000),
                (spouse, "medical", 28000),
                (adult, "pension", 50000),
            ],
        )
        session.commit()
        order_id, out_trade_no, amount = order.id, order.out_trade_no, order.amount_fen
        body = wechat_v2_payment(
            app.config["SETTINGS"], out_trade_no=out_trade_no, amount_fen=amount
        )
        db.session.remove()

    url = pg_live_api.url + "/api/v1/payments/notify/wechat"
    barrier = threading.Barrier(COPIES)
    replies: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait()
        r = requests.post(url, data=body, headers={"Content-Type": "text/xml"}, timeout=30)
        with lock:
            replies.append((r.status_code, r.content))

    threads = [threading.Thread(target=post) for _ in range(COPIES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert replies == [(200, proto.SUCCESS_XML)] * COPIES
    with app.app_context():
        session = db.session()
        assert session.get(PaymentOrder, order_id).status == OrderStatus.PAID
        contribution_ids = session.scalars(
            select(Contribution.id).where(Contribution.order_id == order_id)
        ).all()
        assert len(contribution_ids) == 3
        assert (
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.contribution_id.in_(contribution_ids))
            )
            == 3
        )
        outcomes = session.scalars(select(ChannelNotification.outcome)).all()
        assert len(outcomes) == COPIES
        assert sorted(outcomes) == ["applied"] + ["duplicate"] * (COPIES - 1)
        db.session.remove()
