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
from tests.auth.login_fakes import use_settings

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


def test_five_failures_lock_the_username_from_that_address_only(finance: Flask) -> None:
    for _ in range(5):
        assert _login(finance, "fin", "wrong-guess").status_code == 401
    throttled = _login(finance, "fin", "finance123")  # the guesser's address: the window
    assert throttled.status_code == 429
    body = throttled.get_json()
    assert body["code"] == "login_throttled"
    assert body["message"] == "登录失败次数过多，请稍后再试"
    assert 60 < int(throttled.headers["Retry-After"]) <= 900
    # From another address the username only pauses (at most the cap), never for the window.
    paused = _login(finance, "fin", "finance123", addr="10.9.9.9")
    assert paused.status_code == 429 and 1 <= int(paused.headers["Retry-After"]) <= 60
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
    assert reasons.count("bad_credentials") == 6 and reasons.count("throttled") == 2


def test_an_attacker_cannot_lock_finance_out_of_its_own_address(finance: Flask) -> None:
    """Issue 10, defect 2: five wrong passwords from anywhere locked the staff member out.
    Guesses from many addresses only lengthen a pause (capped); finance's own address gets
    in once it has passed, while the guessers' addresses stay locked for the window."""
    limits = LoginLimits(max_failures=5, window_seconds=900, delay_cap_seconds=60)
    start = utcnow()
    with finance.app_context():
        session = finance.extensions["database"].session()

        def attempt(password: str, addr: str, second: int) -> None:
            login_staff(
                session,
                username="fin",
                password=password,
                remote_addr=addr,
                limits=limits,
                now=start + timedelta(seconds=second),
            )

        tried = 0
        for second in range(0, 3000, 61):  # an attacker on 50 addresses, each past the pause
            with pytest.raises((Unauthorized, StaffLoginThrottled)):
                attempt("guess", f"10.66.{second % 250}.1", second)
            tried += 1
        last = 49 * 61
        with pytest.raises(StaffLoginThrottled) as paused:
            attempt("finance123", "10.20.0.1", last + 1)  # finance's office
        assert paused.value.retry_after <= 60
        assert attempt("finance123", "10.20.0.1", last + 61) is None  # in, 60 s later
        for n in range(5):  # one address, each guess past the pause
            with pytest.raises(Unauthorized):
                attempt("guess", "10.99.0.1", last + 200 + 61 * n)
        with pytest.raises(StaffLoginThrottled) as locked:  # that address: locked
            attempt("finance123", "10.99.0.1", last + 200 + 61 * 5)
        assert locked.value.retry_after > 60
        session.rollback()
    assert tried == 50


def test_one_address_guessing_many_usernames_is_throttled(finance: Flask) -> None:
    use_settings(finance, STAFF_LOGIN_ADDRESS_MAX_FAILURES=12)
    for n in range(12):
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
