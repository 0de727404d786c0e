"""Login endpoints: residents through WeChat or Alipay, staff with a password."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from api.auth import service
from api.auth.providers import providers_for
from api.auth.schemas import (
    AlipayLoginSchema,
    StaffLoginSchema,
    StaffTokenSchema,
    TokenSchema,
    WeChatLoginSchema,
)
from api.config import Config
from api.db import get_session
from api.errors import Unauthorized
from api.extensions.smorest import Blueprint, ErrorSchema

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="居民登录与工作人员登录")


def _resident_login(channel: str, code: str) -> dict[str, Any]:
    settings: Config = current_app.config["SETTINGS"]
    provider = providers_for(current_app.extensions, settings).get(channel)
    session = get_session()
    account = service.login_resident(
        session, provider=provider, code=code, remote_addr=request.remote_addr
    )
    session.commit()
    issued = service.issue(settings, kind="resident", account_id=account.id)
    return {"token": issued.token, "expires_in": issued.expires_in}


def _document_login_errors(func: Any) -> Any:
    func = blp.alt_response(401, schema=ErrorSchema, description="登录凭证无效或已使用")(func)
    func = blp.alt_response(429, schema=ErrorSchema, description="登录过于频繁")(func)
    return blp.alt_response(502, schema=ErrorSchema, description="微信/支付宝登录服务不可用")(func)


@blp.route("/wechat", methods=["POST"])
@blp.arguments(WeChatLoginSchema())
@blp.response(200, TokenSchema())
@_document_login_errors
def wechat_login(body: dict[str, Any]) -> dict[str, Any]:
    """微信小程序登录

    用 wx.login() 的 code 调用 jscode2session 换取 openid，首次登录自动建立居民账号，
    返回 Bearer 令牌。code 无效或已使用 → 401 login_failed；微信接口故障 → 502 upstream_error。
    """
    return _resident_login("wechat", body["code"])


@blp.route("/alipay", methods=["POST"])
@blp.arguments(AlipayLoginSchema())
@blp.response(200, TokenSchema())
@_document_login_errors
def alipay_login(body: dict[str, Any]) -> dict[str, Any]:
    """支付宝小程序登录

    用 my.getAuthCode() 的授权码调用 alipay.system.oauth.token 换取支付宝用户 ID，
    首次登录自动建立居民账号，返回 Bearer 令牌。
    """
    return _resident_login("alipay", body["auth_code"])


@blp.route("/staff", methods=["POST"])
@blp.arguments(StaffLoginSchema())
@blp.response(200, StaffTokenSchema())
@blp.alt_response(401, schema=ErrorSchema, description="用户名或密码错误")
@blp.alt_response(429, schema=ErrorSchema, description="登录失败次数过多（Retry-After 秒后再试）")
def staff_login(body: dict[str, Any]) -> dict[str, Any]:
    """工作人员登录

    代办员、镇(街)、财政、部门、税务、审计人员用户名和密码登录，返回 Bearer 令牌。
    同一地址对同一用户名、或同一地址总的失败次数过多 → 429 login_throttled（Retry-After）；
    其他地址的失败只会让该用户名逐步延时（最长 THROTTLE_DELAY_CAP_SECONDS 秒），不会被锁定。
    """
    settings: Config = current_app.config["SETTINGS"]
    session = get_session()
    try:
        staff = service.login_staff(
            session,
            username=body["username"],
            password=body["password"],
            remote_addr=request.remote_addr,
            limits=service.LoginLimits(
                max_failures=settings.STAFF_LOGIN_MAX_FAILURES,
                window_seconds=settings.STAFF_LOGIN_WINDOW_SECONDS,
                address_max_failures=settings.STAFF_LOGIN_ADDRESS_MAX_FAILURES,
                delay_cap_seconds=settings.THROTTLE_DELAY_CAP_SECONDS,
            ),
        )
    except service.StaffLoginThrottled:
        session.commit()  # the refusal's audit event
        raise
    except Unauthorized:
        session.commit()  # the failure and its audit event must survive the 401
        raise
    session.commit()
    issued = service.issue(settings, kind="staff", account_id=staff.id)
    return {
        "token": issued.token,
        "expires_in": issued.expires_in,
        "role": staff.role,
        "username": staff.username,
    }
