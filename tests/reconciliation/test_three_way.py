"""The three-way check channel ↔ us ↔ tax over the sandbox (WeChat v2, both backends), with
the tax consumer stopped: bill and ours balance, the tax side lags and every record behind
the lag is listed; once the tax side acknowledges, all three balance."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy import select

from api.payments.outbox import OutboxMessage
from api.payments.outbox.service import Acknowledgement, record_acknowledgements
from tests.reconciliation.test_reconcile_race_and_recheck import wechat_shop  # noqa: F401
from tests.reconciliation.test_reconcile_sandbox import (
    PERSONS,
    _bill_day,
    _faults,
    _items,
    _paid_family,
    _staff_token,
    _wait,
    reconcile,
)


def _three_way(shop: Any, token: str, day: str) -> dict[str, Any]:
    r = requests.get(f"{shop.url}/api/v1/finance/reconciliation/three-way",
                     params={"date": day, "channel": "wechat"},
                     headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()["channels"][0]
    return body


def test_three_way_lists_what_the_stopped_tax_consumer_has_not_acknowledged(
    wechat_shop: Any,  # noqa: F811
    sandbox: Any,
) -> None:
    app = wechat_shop.app
    first = _paid_family(wechat_shop, sandbox, "wechat", "a")
    second = _paid_family(wechat_shop, sandbox, "wechat", "b")
    finance = _staff_token(app)
    refund = requests.post(
        wechat_shop.url + "/api/v1/finance/refunds",
        json={"out_trade_no": second, "reason": "duplicate", "note": "现金已缴",
              "items": [{"person_id": PERSONS[second], "insurance": "medical"}]},
        headers={"Authorization": f"Bearer {finance}"}, timeout=30,
    )  # fmt: skip
    assert refund.status_code == 201, refund.text
    db = app.extensions["database"]

    def reversal_queued() -> bool:
        with app.app_context():
            found = (
                db.session()
                .scalars(
                    select(OutboxMessage.id).where(OutboxMessage.event == "contribution.reversed")
                )
                .first()
            )
            db.session.remove()
        return found is not None

    _wait(reversal_queued)
    third = _paid_family(wechat_shop, sandbox, "wechat", "c")
    _faults(sandbox, ["bill_amount"], third)  # the bill shows it one yuan high
    day = _bill_day(sandbox, "wechat", first)
    code, run, output = reconcile(app, "--channel", "wechat", "--date", day)
    assert code == 0 and run is not None, output

    auditor = _staff_token(app, "auditor")
    check = _three_way(wechat_shop, auditor, day)
    assert check["bill"]["net_fen"] == run["bill_total_fen"] - run["bill_refund_fen"]
    assert check["bill_minus_ours_fen"] == 100 and check["unresolved_items"] == 1
    assert check["ours"]["reversed_fen"] == run["bill_refund_fen"] > 0
    assert check["tax"]["net_fen"] == 0 and check["balanced"] is False
    # Every record behind the difference: two payments and one reversal, none acknowledged.
    lagging = sorted((d["event"], d["record_status"]) for d in check["tax_differences"])
    assert lagging == [
        ("contribution.paid", "pending"),
        ("contribution.paid", "pending"),
        ("contribution.paid", "pending"),
        ("contribution.reversed", "pending"),
    ]
    assert check["ours_minus_tax_fen"] == check["ours"]["net_fen"]

    # The tax side catches up (acknowledges every record): the three sides balance.
    with app.app_context():
        session = db.session()
        ids = [d["record_id"] for d in check["tax_differences"]]
        record_acknowledgements(
            session, [Acknowledgement(i, "booked") for i in ids], received_from="test"
        )
        session.commit()
        db.session.remove()
    check = _three_way(wechat_shop, auditor, day)
    assert check["tax_differences"] == [] and check["ours_minus_tax_fen"] == 0
    assert check["balanced"] is False  # the bill's extra yuan is not explained yet

    # Finance resolves the amount difference; the three sides balance.
    item = _items(app)[third]
    done = requests.post(
        f"{wechat_shop.url}/api/v1/finance/reconciliation/items/{item.id}/resolve",
        json={"action": "matched_manually", "reason": "渠道账单金额有误，已联系渠道更正"},
        headers={"Authorization": f"Bearer {finance}"}, timeout=30,
    )  # fmt: skip
    assert done.status_code == 200, done.text
    check = _three_way(wechat_shop, auditor, day)
    assert (check["explained_fen"], check["bill_minus_ours_fen"]) == (100, 0)
    assert check["balanced"] is True
