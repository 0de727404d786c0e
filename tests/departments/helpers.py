"""Helpers for the department tests: staff tokens, list files, uploads through the API, paid
contributions, and a channel that closes every order (no gateway needed)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth.models import StaffAccount
from api.auth.tokens import issue_token
from api.households.models import Person
from api.payments.models import Contribution, OrderStatus, PaymentOrder
from api.policy import load_policy
from tests.payments.factories import make_order

POLICY = load_policy(2020)
MEDICAL = POLICY.medical.premium_fen
ON_TIME = "2019-11-05"
LATE = "2019-11-27"
HEADER = "身份证号,姓名,类别,生效日期,文号\n"


def staff(
    app: Flask, session: Session, role: str, username: str, department: str | None = None
) -> dict[str, str]:
    account = StaffAccount(
        username=username,
        display_name=username,
        password_hash="x",
        role=role,
        department=department,
    )
    session.add(account)
    session.flush()
    token = issue_token(
        secret_key=app.config["SETTINGS"].SECRET_KEY, kind="staff", account_id=account.id
    )
    return {"Authorization": f"Bearer {token}"}


def csv_of(*rows: tuple[str, ...]) -> bytes:
    return (HEADER + "".join(",".join(r) + "\n" for r in rows)).encode()


def row(
    person: Person, key: str, *, name: str | None = None, day: str = "2019-10-15"
) -> tuple[str, ...]:
    return (person.id_number, name or person.name, key, day, "民发〔2019〕1号")


def upload(
    client: FlaskClient,
    headers: dict[str, str],
    data: bytes,
    *,
    year: int = 2020,
    categories: str = "",
    file_name: str = "list.csv",
) -> Any:
    form: dict[str, Any] = {"year": str(year), "file": (io.BytesIO(data), file_name)}
    if categories:
        form["categories"] = categories
    return client.post(
        "/api/v1/departments/uploads",
        data=form,
        headers=headers,
        content_type="multipart/form-data",
    )


def upload_and_apply(client: FlaskClient, headers: dict[str, str], data: bytes, **kw: Any) -> Any:
    r = upload(client, headers, data, **kw)
    assert r.status_code == 201, r.get_json()
    applied = client.post(
        f"/api/v1/departments/uploads/{r.get_json()['id']}/apply", headers=headers
    )
    assert applied.status_code == 200, applied.get_json()
    return applied.get_json()


class ClosingChannel:
    """Every close succeeds (the order was never paid at the channel)."""

    def __init__(self) -> None:
        self.closed: list[str] = []

    def close(self, out_trade_no: str) -> None:
        self.closed.append(out_trade_no)


def closing_channel(monkeypatch: Any) -> ClosingChannel:
    channel = ClosingChannel()
    monkeypatch.setattr("api.payments.orders.get_channel", lambda settings, name: channel)
    return channel


def paid_order(
    session: Session,
    household: Any,
    person: Person,
    insurance: str,
    amount: int,
    *,
    paid_at: datetime | None = None,
) -> PaymentOrder:
    """An online order paid by the resident, with its booked contribution."""
    order = make_order(
        session, household, status=OrderStatus.PAID, items=[(person, insurance, amount)]
    )
    order.paid_amount_fen = amount
    when = paid_at or datetime(2019, 11, 5, 2, 0, tzinfo=UTC)
    item = order.items[0]
    session.add(
        Contribution(
            person_id=person.id,
            household_id=household.id,
            insurance=insurance,
            year=2020,
            amount_fen=amount,
            government_pays_fen=0,
            subsidy_fen=item.subsidy_fen,
            pension_tier=item.pension_tier,
            source="wechat",
            order_id=order.id,
            order_item_id=item.id,
            out_trade_no=order.out_trade_no,
            channel_transaction_id="4200000000" + order.out_trade_no[-10:],
            paid_at=when,
            late=False,
            benefit_start=POLICY.coverage_start,
            status="paid",
        )
    )
    session.flush()
    return order


def count(session: Session, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
