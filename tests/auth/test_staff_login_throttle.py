"""Staff password guessing is throttled per username and per address (429 + Retry-After)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from api.audit.models import AuditEvent
from api.auth.service import LoginLimits, StaffLoginThrottled, create_staff, login_staff
from api.db import utcnow
from api.errors import Unauthorized

STAFF = "/api/v1/auth/staff"


@pytest.fixture
def finance(app: Flask) -> Flask:
    with app.app_context():
        session = app.extensions["database"].session()
        create_staff(session, username="fin", role="finance", password="finance123")
        session.commit()
    return app


def _login(app: Flask, username: str, password: str, addr: str = "10.0.0.1") -> object:
    return app.test_client().post(
        STAFF,
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_after_five_failures_even_the_right_password_is_refused_for_a_while(
    finance: Flask,
) -> None:
    for _ in range(5):
        assert _login(finance, "fin", "wrong-guess").status_code == 401
    throttled = _login(finance, "fin", "finance123", addr="10.9.9.9")  # another address too
    assert throttled.status_code == 429
    body = throttled.get_json()
    assert body["code"] == "login_throttled"
    assert body["message"] == "登录失败次数过多，请稍后再试"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 900
    # Another account is not locked by fin's failures.
    assert _login(finance, "other", "x", addr="10.9.9.9").status_code == 401
    with finance.app_context():
        session = finance.extensions["database"].session()
        reasons = [
            e.detail["reason"]
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action == "staff.login")
            ).all()
        ]
    assert reasons.count("bad_credentials") == 6 and reasons.count("throttled") == 1


def test_one_address_guessing_many_usernames_is_throttled(finance: Flask) -> None:
    for n in range(20):  # 4 × the per-username limit: a shared town office stays usable
        assert _login(finance, f"guess-{n}", "x", addr="10.6.6.6").status_code == 401
    refused = _login(finance, "fin", "finance123", addr="10.6.6.6")
    assert refused.status_code == 429
    assert _login(finance, "fin", "finance123", addr="10.7.7.7").status_code == 200


def test_a_successful_login_clears_its_usernames_failures(finance: Flask) -> None:
    for _ in range(4):
        assert _login(finance, "fin", "typo-typo").status_code == 401
    assert _login(finance, "fin", "finance123").status_code == 200
    for _ in range(4):
        assert _login(finance, "fin", "typo-typo").status_code == 401
    assert _login(finance, "fin", "finance123").status_code == 200


def test_failures_leave_the_window(finance: Flask) -> None:
    limits = LoginLimits(max_failures=5, window_seconds=900)
    start = utcnow()
    with finance.app_context():
        session = finance.extensions["database"].session()
        for _ in range(5):
            with pytest.raises(Unauthorized):
                login_staff(
                    session,
                    username="fin",
                    password="wrong",
                    remote_addr="10.1.1.1",
                    limits=limits,
                    now=start,
                )
        with pytest.raises(StaffLoginThrottled) as throttled:
            login_staff(
                session,
                username="fin",
                password="finance123",
                remote_addr="10.1.1.1",
                limits=limits,
                now=start + timedelta(seconds=600),
            )
        assert throttled.value.retry_after == 300
        staff = login_staff(
            session,
            username="fin",
            password="finance123",
            remote_addr="10.1.1.1",
            limits=limits,
            now=start + timedelta(seconds=901),
        )
        assert staff.username == "fin"
        session.rollback()
