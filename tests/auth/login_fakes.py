"""Fakes of the login gateways: a jscode2session server and an Alipay `gateway.do`.

Each is a real HTTP server on 127.0.0.1 (an ephemeral port) so the SDKs run unchanged:
wechatpy's requests session and python-alipay-sdk's urlopen talk to them exactly as they would
to the vendors. The Alipay fake signs its replies with a key pair generated for this run.
Importable by other test packages: `from tests.auth.login_fakes import FakeWeChat, ...`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask

from api.config import Config


@dataclass
class FakeWeChat:
    """jscode2session: `codes` maps a code to its openid; a code works once (40163 after)."""

    codes: dict[str, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    requests: list[dict[str, str]] = field(default_factory=list)
    fail_with: int | None = None  # an errcode every call answers with
    http_status: int = 200
    base_url: str = ""

    def answer(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(params)
        if self.http_status != 200:
            return self.http_status, {}
        if self.fail_with is not None:
            return 200, {"errcode": self.fail_with, "errmsg": "fake failure"}
        code = params.get("js_code", "")
        if code in self.used:
            return 200, {"errcode": 40163, "errmsg": "code been used"}
        if code not in self.codes:
            return 200, {"errcode": 40029, "errmsg": "invalid code"}
        self.used.add(code)
        return 200, {"openid": self.codes[code], "session_key": "c2Vzc2lvbmtleQ=="}


@dataclass
class FakeAlipay:
    """gateway.do for `alipay.system.oauth.token`, replies signed with `private_key`."""

    private_key: rsa.RSAPrivateKey
    codes: dict[str, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    requests: list[dict[str, str]] = field(default_factory=list)
    sign_replies: bool = True
    business_code: str | None = None  # e.g. "40004": answer inside the normal response key
    base_url: str = ""

    def _signed(self, key: str, inner: dict[str, Any]) -> str:
        inner_text = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
        if not self.sign_replies:
            return f'{{"{key}":{inner_text}}}'
        signature = self.private_key.sign(inner_text.encode(), padding.PKCS1v15(), hashes.SHA256())
        sign = base64.b64encode(signature).decode()
        return f'{{"{key}":{inner_text},"sign":"{sign}"}}'

    def answer(self, params: dict[str, str]) -> tuple[int, str]:
        self.requests.append(params)
        if params.get("method") != "alipay.system.oauth.token":
            return 200, self._signed("error_response", {"code": "40002", "msg": "bad method"})
        code = params.get("code", "")
        if self.business_code is not None:
            inner = {"code": self.business_code, "msg": "Business Failed", "sub_code": "x"}
            return 200, self._signed("alipay_system_oauth_token_response", inner)
        if code in self.used or code not in self.codes:
            inner = {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.code-invalid",
                "sub_msg": "授权码code无效",
            }
            return 200, self._signed("error_response", inner)
        self.used.add(code)
        inner = {
            "user_id": self.codes[code],
            "access_token": "authusrB" + code,
            "expires_in": 1296000,
            "refresh_token": "refresh" + code,
            "re_expires_in": 2592000,
        }
        return 200, self._signed("alipay_system_oauth_token_response", inner)


class Server:
    def __init__(self, handler_factory: Any) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_factory)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def query_params(path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}


def use_settings(app: Flask, **changes: Any) -> Config:
    """Replace the app's settings for one test (the `app` fixture restores the config)."""
    settings = dataclasses.replace(app.config["SETTINGS"], **changes)
    app.config["SETTINGS"] = settings
    app.config.update(changes)
    return settings
