"""The finance callback log pages by an id cursor: rows logged while a reader pages neither
repeat nor vanish (issue 15: offset pages of the live log slid, and the scenario's final check
counted one applied notification twice). Offset parameters are refused, not ignored, so an old
client cannot loop on page one forever."""

from __future__ import annotations

from typing import Any

from api.db import utcnow
from api.payments.models import ChannelNotification
from tests.payments.test_payments_api import _staff

LOG = "/api/v1/finance/notifications"


def _log(session: Any, count: int, *, tag: str) -> list[int]:
    rows = [
        ChannelNotification(
            channel="wechat",
            path="/api/v1/payments/notify/wechat",
            raw_body=b"<xml/>",
            headers={},
            received_at=utcnow(),
            outcome="duplicate",
            out_trade_no=f"{tag}{n}",
        )
        for n in range(count)
    ]
    session.add_all(rows)
    session.flush()
    return [r.id for r in rows]


def _read_all(client: Any, headers: dict[str, str], query: str, between: Any) -> list[int]:
    """Page through the log, calling `between()` after every page."""
    seen: list[int] = []
    cursor = None
    while True:
        url = f"{LOG}?{query}" + (f"&cursor={cursor}" if cursor else "")
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.json
        seen += [n["id"] for n in r.json]
        cursor = r.headers.get("X-Next-Cursor")
        assert ('"next_cursor": null' in r.headers["X-Pagination"]) == (cursor is None)
        if cursor is None:
            return seen
        between()


def test_newest_first_pages_neither_repeat_nor_skip_while_rows_arrive(
    app: Any, client: Any, session: Any
) -> None:
    finance = _staff(app, session, "finance")
    before = _log(session, 7, tag="old")
    arrived: list[int] = []
    seen = _read_all(
        client,
        finance,
        "limit=3",
        lambda: arrived.extend(_log(session, 2, tag=f"new{len(arrived)}")),
    )
    assert seen == sorted(before, reverse=True)  # every old row once, in order, none lost
    assert len(arrived) == 4  # rows did arrive between the pages (above the first page)


def test_oldest_first_pages_reach_the_rows_added_meanwhile_once(
    app: Any, client: Any, session: Any
) -> None:
    finance = _staff(app, session, "finance")
    before = _log(session, 5, tag="old")
    arrived: list[int] = []

    def more() -> None:
        if len(arrived) < 4:
            arrived.extend(_log(session, 2, tag=f"new{len(arrived)}"))

    seen = _read_all(client, finance, "limit=2&order=asc", more)
    assert seen == before + arrived  # continuous reconciliation: each row exactly once
    assert len(seen) == len(set(seen)) == 9


def test_filters_apply_within_the_cursor(app: Any, client: Any, session: Any) -> None:
    finance = _staff(app, session, "finance")
    _log(session, 3, tag="a")
    wanted = _log(session, 1, tag="b")
    _log(session, 3, tag="c")
    r = client.get(f"{LOG}?out_trade_no=b0&limit=1", headers=finance)
    assert [n["id"] for n in r.json] == wanted and "X-Next-Cursor" not in r.headers


def test_offset_parameters_and_bad_cursors_are_refused(app: Any, client: Any, session: Any) -> None:
    finance = _staff(app, session, "finance")
    for query in ("page=2", "page_size=10", "cursor=abc", "cursor=0", "limit=501", "order=up"):
        r = client.get(f"{LOG}?{query}", headers=finance)
        assert r.status_code == 422, query
        assert r.json["code"] and r.json["message"]


def test_the_scenario_client_reads_every_row_once_while_rows_arrive(live_api: Any) -> None:
    """The sandbox scenario's final check (`ApiClient.notifications`) follows the cursor: rows
    logged between its pages (gateway retries) are read once, never twice."""
    from api.auth.models import StaffAccount
    from api.auth.tokens import issue_token
    from sandbox.scenario.api_client import ApiClient

    app = live_api.app
    db = app.extensions["database"]

    def log(count: int, tag: str) -> list[int]:
        with app.app_context():
            ids = _log(db.session(), count, tag=tag)
            db.session().commit()
            db.session.remove()
        return ids

    with app.app_context():
        session = db.session()
        staff = StaffAccount(
            username="scenario-finance", display_name="财务", password_hash="x", role="finance"
        )
        session.add(staff)
        session.commit()
        token = issue_token(
            secret_key=app.config["SETTINGS"].SECRET_KEY, kind="staff", account_id=staff.id
        )
        db.session.remove()
    before = log(1200, "old")  # more than two pages of 500
    client = ApiClient(live_api.url)
    client.token = token
    seen, arrived = [], []
    for row in client.notifications():
        seen.append(row["id"])
        if len(seen) in (500, 1000):  # a page boundary: retries land meanwhile
            arrived += log(3, f"new{len(seen)}")
    client.close()
    assert len(seen) == len(set(seen))  # no row twice
    assert seen == before + arrived  # every row, oldest first, the new ones included
