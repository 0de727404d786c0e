"""Mini-program login: `GET /cgi-bin/token` and `GET /sns/jscode2session` (PROTOCOLS.md §3).

Sandbox convention for codes: `<user>` or `<user>.<nonce>`. The openid is derived from the
appid and the user part, so a resident who logs in again with a fresh code gets the same
openid; each exact code works once (40163 on reuse), as WeChat's codes do. Errors use
WeChat's JSON shape `{"errcode", "errmsg"}`.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from sandbox import ids
from sandbox.context import current

bp = Blueprint("wechat_login", __name__)

TOKEN_TTL = 7200


def _error(errcode: int, errmsg: str) -> ResponseReturnValue:
    """WeChat answers errors with HTTP 200 and an errcode (§3)."""
    rid = secrets.token_hex(4)
    return jsonify({"errcode": errcode, "errmsg": f"{errmsg}, rid: {rid}"})


def _check_app(args: Any) -> ResponseReturnValue | None:
    s = current().settings
    appid, secret = args.get("appid", ""), args.get("secret", "")
    if appid != s.WECHAT_APPID:
        return _error(40013, "invalid appid")
    if secret != s.WECHAT_APPSECRET:
        return _error(40125, "invalid appsecret")
    return None


@bp.get("/cgi-bin/token")
def token() -> ResponseReturnValue:
    """client_credential token; any number of calls, each a new token."""
    if request.args.get("grant_type") != "client_credential":
        return _error(40002, "invalid grant_type")
    if (refused := _check_app(request.args)) is not None:
        return refused
    return jsonify(
        {"access_token": "SANDBOX_" + secrets.token_urlsafe(48), "expires_in": TOKEN_TTL}
    )


@bp.get("/sns/jscode2session")
def jscode2session() -> ResponseReturnValue:
    """code → openid + session_key. wechatpy also sends an access_token: ignored (§0.4)."""
    if (refused := _check_app(request.args)) is not None:
        return refused
    if request.args.get("grant_type", "authorization_code") != "authorization_code":
        return _error(40002, "invalid grant_type")
    code = request.args.get("js_code", "")
    user = ids.code_user(code)
    if not code or not user or len(code) > 128:
        return _error(40029, "invalid code")
    sandbox = current()
    if not sandbox.store.use_code("wechat", code):
        return _error(40163, "code been used")
    s = sandbox.settings
    return jsonify(
        {
            "session_key": ids.session_key(),
            "openid": ids.openid_for(s.WECHAT_APPID, user),
            "unionid": ids.unionid_for(user),
        }
    )
