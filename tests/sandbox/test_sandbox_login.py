"""Mini-program login (jscode2session) through wechatpy's WeChatClient (§3)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException


def _client(sandbox: Any, settings: Any, secret: str | None = None) -> WeChatClient:
    client = WeChatClient(
        settings.WECHAT_APPID, secret or settings.WECHAT_APPSECRET, access_token="x"
    )
    client.wxa.API_BASE_URL = sandbox.base_url + "/"
    return client


def test_code_gives_stable_openid_and_is_single_use(sandbox: Any, settings: Any) -> None:
    client = _client(sandbox, settings)
    first = client.wxa.code_to_session("zhangsan.n1")
    again = client.wxa.code_to_session("zhangsan.n2")
    other = client.wxa.code_to_session("lisi")
    assert first["openid"] == again["openid"] != other["openid"]
    assert first["openid"].startswith("o") and len(first["openid"]) == 28
    assert first["session_key"]
    with pytest.raises(WeChatClientException) as used:
        client.wxa.code_to_session("zhangsan.n1")
    assert used.value.errcode == 40163


def test_bad_secret_and_token(sandbox: Any, settings: Any) -> None:
    with pytest.raises(WeChatClientException) as bad:
        _client(sandbox, settings, secret="wrong").wxa.code_to_session("u1")
    assert bad.value.errcode == 40125
    token = requests.get(
        f"{sandbox.base_url}/cgi-bin/token",
        params={
            "grant_type": "client_credential",
            "appid": settings.WECHAT_APPID,
            "secret": settings.WECHAT_APPSECRET,
        },
    ).json()
    assert token["expires_in"] == 7200 and token["access_token"]
