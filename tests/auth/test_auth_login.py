"""Resident login through WeChat and Alipay, staff login, token expiry and tampering."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from api.audit.models import AuditEvent
from api.auth.guards import authenticate
from api.auth.models import ResidentAccount
from api.auth.service import create_staff, issue
from api.auth.tokens import issue_token
from api.errors import Forbidden, Unauthorized
from tests.auth.login_fakes import FakeAlipay, FakeWeChat, use_settings


def _post(app: Flask, path: str, body: Any) -> Any:
    return app.test_client().post(path, json=body)


# WeChat ---------------------------------------------------------------------------------------


def test_wechat_login_creates_one_account_per_openid(
    login_app: Flask, fake_wechat: FakeWeChat
) -> None:
    fake_wechat.codes.update({"code-1": "openid-A", "code-2": "openid-A", "code-3": "openid-B"})
    first = _post(login_app, "/api/v1/auth/wechat", {"code": "code-1"})
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert set(body) == {"token", "expires_in"}
    assert body["expires_in"] == login_app.config["SETTINGS"].TOKEN_TTL_SECONDS
    again = _post(login_app, "/api/v1/auth/wechat", {"code": "code-2"}).get_json()
    other = _post(login_app, "/api/v1/auth/wechat", {"code": "code-3"}).get_json()

    with login_app.app_context():
        session = login_app.extensions["database"].session()
        accounts = session.scalars(
            select(ResidentAccount).where(ResidentAccount.channel == "wechat")
        ).all()
        assert sorted(a.external_id for a in accounts) == ["openid-A", "openid-B"]
        ids = {
            token: _resident_id(login_app, token)
            for token in (body["token"], again["token"], other["token"])
        }
    assert ids[body["token"]] == ids[again["token"]] != ids[other["token"]]
    # The request reached the fake, with our app id and secret, never the real host.
    sent = fake_wechat.requests[0]
    assert sent["appid"] == login_app.config["SETTINGS"].WECHAT_APPID
    assert sent["grant_type"] == "authorization_code"


def _resident_id(app: Flask, token: str) -> int:
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        from flask import request

        account = authenticate(request, kind="resident")
        return int(account.id)


def test_wechat_reused_code_is_login_failed(login_app: Flask, fake_wechat: FakeWeChat) -> None:
    fake_wechat.codes["once"] = "openid-once"
    assert _post(login_app, "/api/v1/auth/wechat", {"code": "once"}).status_code == 200
    reused = _post(login_app, "/api/v1/auth/wechat", {"code": "once"})
    assert reused.status_code == 401
    assert reused.get_json()["code"] == "login_failed"
    assert "登录" in reused.get_json()["message"]


def test_wechat_bad_code_creates_no_account(login_app: Flask, fake_wechat: FakeWeChat) -> None:
    response = _post(login_app, "/api/v1/auth/wechat", {"code": "never-issued"})
    assert response.status_code == 401
    assert response.get_json()["code"] == "login_failed"
    with login_app.app_context():
        session = login_app.extensions["database"].session()
        assert session.scalars(select(ResidentAccount)).first() is None


@pytest.mark.parametrize(
    ("errcode", "status", "code"),
    [
        (-1, 502, "upstream_error"),
        (40125, 502, "upstream_error"),
        (45011, 429, "too_many_requests"),
    ],
)
def test_wechat_gateway_failures(
    login_app: Flask, fake_wechat: FakeWeChat, errcode: int, status: int, code: str
) -> None:
    fake_wechat.fail_with = errcode
    response = _post(login_app, "/api/v1/auth/wechat", {"code": "x"})
    assert response.status_code == status
    assert response.get_json()["code"] == code


def test_wechat_http_error_and_unreachable_are_502(
    login_app: Flask, fake_wechat: FakeWeChat
) -> None:
    fake_wechat.http_status = 500
    assert _post(login_app, "/api/v1/auth/wechat", {"code": "x"}).status_code == 502
    use_settings(login_app, WECHAT_API_BASE="http://127.0.0.1:9/")  # discard port: refused
    response = _post(login_app, "/api/v1/auth/wechat", {"code": "x"})
    assert response.status_code == 502
    assert response.get_json()["code"] == "upstream_error"


# Alipay ---------------------------------------------------------------------------------------


def test_alipay_login_success_then_reused_code(login_app: Flask, fake_alipay: FakeAlipay) -> None:
    fake_alipay.codes["auth-1"] = "2088000000000077"
    ok = _post(login_app, "/api/v1/auth/alipay", {"auth_code": "auth-1"})
    assert ok.status_code == 200, ok.get_json()
    account_id = _resident_id(login_app, ok.get_json()["token"])
    with login_app.app_context():
        account = login_app.extensions["database"].session().get(ResidentAccount, account_id)
        assert (account.channel, account.external_id) == ("alipay", "2088000000000077")
    sent = fake_alipay.requests[0]
    assert sent["grant_type"] == "authorization_code" and sent["code"] == "auth-1"
    assert sent["app_id"] == login_app.config["SETTINGS"].ALIPAY_APPID
    reused = _post(login_app, "/api/v1/auth/alipay", {"auth_code": "auth-1"})
    assert reused.status_code == 401
    assert reused.get_json()["code"] == "login_failed"


def test_alipay_unsigned_or_forged_reply_is_not_trusted(
    login_app: Flask, fake_alipay: FakeAlipay
) -> None:
    fake_alipay.codes["auth-2"] = "2088000000000078"
    fake_alipay.sign_replies = False
    response = _post(login_app, "/api/v1/auth/alipay", {"auth_code": "auth-2"})
    assert response.status_code == 502
    # A reply signed with some other key fails verification: still no account.
    from cryptography.hazmat.primitives.asymmetric import rsa

    fake_alipay.sign_replies = True
    fake_alipay.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake_alipay.used.clear()
    forged = _post(login_app, "/api/v1/auth/alipay", {"auth_code": "auth-2"})
    assert forged.status_code == 502
    assert forged.get_json()["code"] == "upstream_error"
    with login_app.app_context():
        session = login_app.extensions["database"].session()
        assert session.scalars(select(ResidentAccount)).first() is None


def test_alipay_business_failure_is_502(login_app: Flask, fake_alipay: FakeAlipay) -> None:
    fake_alipay.business_code = "40004"
    response = _post(login_app, "/api/v1/auth/alipay", {"auth_code": "whatever"})
    assert response.status_code == 502


# Malformed requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/wechat", "/api/v1/auth/alipay", "/api/v1/auth/staff"]
)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"data": "{not json", "content_type": "application/json"},
        {"json": []},
        {"json": "code"},
        {"json": {"code": 12, "auth_code": 12, "username": 1, "password": 2}},
        {"json": {"code": "", "auth_code": ""}},
        {"json": {"unexpected": "x"}},
        {"data": "code=x", "content_type": "application/x-www-form-urlencoded"},
    ],
)
def test_malformed_login_bodies_are_4xx_json(app: Flask, path: str, kwargs: dict[str, Any]) -> None:
    response = app.test_client().post(path, **kwargs)
    assert 400 <= response.status_code < 500
    body = response.get_json()
    assert body["status"] == response.status_code and body["code"]


# Tokens ---------------------------------------------------------------------------------------


def _resident_token(app: Flask) -> tuple[str, int]:
    with app.app_context():
        session = app.extensions["database"].session()
        account = ResidentAccount(channel="wechat", external_id="openid-token-test")
        session.add(account)
        session.commit()
        issued = issue(app.config["SETTINGS"], kind="resident", account_id=account.id)
        return issued.token, account.id


def test_expired_token_is_401(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    token, _ = _resident_token(app)
    ttl = app.config["SETTINGS"].TOKEN_TTL_SECONDS
    real_time = time.time
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real_time() + ttl + 5)
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        from flask import request

        with pytest.raises(Unauthorized) as excinfo:
            authenticate(request, kind="resident")
    assert "过期" in excinfo.value.message


def test_tampered_foreign_or_wrong_kind_tokens_are_401(app: Flask) -> None:
    token, account_id = _resident_token(app)
    settings = app.config["SETTINGS"]
    payload, _, rest = token.partition(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + rest
    foreign = issue_token(secret_key="another-secret", kind="resident", account_id=account_id)
    as_staff = issue_token(secret_key=settings.SECRET_KEY, kind="staff", account_id=account_id)
    unknown = issue_token(secret_key=settings.SECRET_KEY, kind="resident", account_id=999999)
    client = app.test_client()
    for bad in (tampered, foreign, as_staff, unknown, "", "garbage"):
        with app.test_request_context(headers={"Authorization": f"Bearer {bad}"}):
            from flask import request

            with pytest.raises(Unauthorized):
                authenticate(request, kind="resident")
    # Through a real guarded endpoint: a JSON 401, never a 500.
    for header in ({"Authorization": f"Bearer {tampered}"}, {"Authorization": "Basic abc"}, {}):
        response = client.get("/api/v1/households/1/premiums?year=2020", headers=header)
        assert response.status_code == 401
        assert response.get_json()["code"] == "unauthorized"


# Staff ----------------------------------------------------------------------------------------


def test_staff_login_and_roles(app: Flask) -> None:
    with app.app_context():
        session = app.extensions["database"].session()
        create_staff(session, username="fin", role="finance", password="finance123")
        session.commit()
    client = app.test_client()
    wrong = client.post("/api/v1/auth/staff", json={"username": "fin", "password": "nope-nope"})
    unknown = client.post("/api/v1/auth/staff", json={"username": "nobody", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    ok = client.post("/api/v1/auth/staff", json={"username": "fin", "password": "finance123"})
    assert ok.status_code == 200
    body = ok.get_json()
    assert body["role"] == "finance"
    token = body["token"]
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        from flask import g, request

        staff = authenticate(request, kind="staff", roles=("finance", "auditor"))
        assert g.staff is staff and staff.username == "fin"
        with pytest.raises(Forbidden):
            authenticate(request, kind="staff", roles=("agent",))
        with pytest.raises(Unauthorized):  # a staff token is not a resident token
            authenticate(request, kind="resident")
    with app.app_context():
        session = app.extensions["database"].session()
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "staff.login")).all()
        assert sorted(e.outcome for e in events) == ["ok", "refused", "refused"]
        assert all("finance123" not in str(e.detail) for e in events)
