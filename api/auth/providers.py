"""Resident identity providers: WeChat `jscode2session` and Alipay `alipay.system.oauth.token`.

Both turn a one-time code from the mini-program into a stable user identifier (WeChat openid,
Alipay user id). They sit behind one small interface (`IdentityProvider.identify`) with the
SDK clients built lazily per app settings, never at import time (STYLE.md). The local sandbox
is just another base URL / gateway in the settings.

Gateway quirks handled here:
- wechatpy adds `access_token` to every call and fetches one from the hard-coded real host
  unless a token is given, and on 40001/40014/42001 it refetches it: we pass a placeholder
  token and `auto_retry=False`, so login never leaves `WECHAT_API_BASE` (PROTOCOLS.md §3).
- jscode2session errors: 40029 invalid code, 40163 code already used, 40226 blocked user
  (the resident's fault → 401); 45011 rate limit (→ 429); -1 busy, 40125 bad secret and
  anything else (→ 502) (PROTOCOLS.md §3).
- python-alipay-sdk has no oauth helper: `server_api("alipay.system.oauth.token", …,
  grant_type=…, code=…)` (the parameters are top-level, not in biz_content). Replies carrying
  `error_response` or no signature raise `AliPayException`; business failures come back as a
  dict, so `code`, when present, must be "10000" (PROTOCOLS.md §5.4, §5.9). A bad or used
  auth code is `isv.code-invalid` (40002) → 401.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests
from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError
from alipay.utils import AliPayConfig
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from api.config import Config

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
# A placeholder access token: jscode2session does not need one, but wechatpy would otherwise
# fetch a real one from api.weixin.qq.com before the call (PROTOCOLS.md §3).
_UNUSED_ACCESS_TOKEN = "unused-by-jscode2session"
WECHAT_CODE_REJECTED = {40029, 40163, 40226}
WECHAT_RATE_LIMITED = {45011}
ALIPAY_CODE_REJECTED = {"isv.code-invalid", "isv.code-expired", "isv.invalid-code"}


class LoginRejected(Exception):
    """The code is invalid, expired, already used or the user is blocked (the caller's fault)."""


class LoginThrottled(Exception):
    """The gateway rate-limited this user (WeChat 45011)."""


class LoginUnavailable(Exception):
    """The gateway failed or answered something we cannot trust (our side or theirs)."""


class IdentityProvider(Protocol):
    channel: str

    def identify(self, code: str) -> str:
        """The channel's stable user id for a one-time login code."""


@dataclass
class WeChatIdentity:
    """WeChat mini-program login (小程序登录, `code2Session`)."""

    settings: Config
    channel: str = "wechat"

    def __post_init__(self) -> None:
        self._local = threading.local()

    def _client(self) -> WeChatClient:
        # One client per thread: wechatpy keeps a requests.Session and a token store per client.
        client: WeChatClient | None = getattr(self._local, "client", None)
        if client is None:
            s = self.settings
            client = WeChatClient(
                s.WECHAT_APPID,
                s.WECHAT_APPSECRET,
                access_token=_UNUSED_ACCESS_TOKEN,
                timeout=TIMEOUT_SECONDS,
                auto_retry=False,
            )
            client.wxa.API_BASE_URL = s.WECHAT_API_BASE
            self._local.client = client
        return client

    def identify(self, code: str) -> str:
        try:
            result = self._client().wxa.code_to_session(code)
        except WeChatClientException as exc:
            errcode = exc.errcode
            log.info("jscode2session refused: errcode=%s", errcode)
            if errcode in WECHAT_CODE_REJECTED:
                raise LoginRejected(str(errcode)) from exc
            if errcode in WECHAT_RATE_LIMITED:
                raise LoginThrottled(str(errcode)) from exc
            raise LoginUnavailable(f"errcode={errcode}") from exc
        except (requests.RequestException, ValueError) as exc:
            log.warning("jscode2session unreachable: %s", type(exc).__name__)
            raise LoginUnavailable(type(exc).__name__) from exc
        openid = result.get("openid") if isinstance(result, dict) else None
        if not isinstance(openid, str) or not openid or len(openid) > 64:
            raise LoginUnavailable("jscode2session answered without a usable openid")
        return openid


@dataclass
class AlipayIdentity:
    """Alipay login (`alipay.system.oauth.token` with grant_type=authorization_code)."""

    settings: Config
    channel: str = "alipay"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._alipay: AliPay | None = None

    def _client(self) -> AliPay:
        with self._lock:
            if self._alipay is None:
                s = self.settings
                client = AliPay(
                    appid=s.ALIPAY_APPID,
                    app_notify_url=None,
                    app_private_key_string=Path(s.ALIPAY_APP_PRIVATE_KEY_FILE).read_text(),
                    alipay_public_key_string=Path(s.ALIPAY_PUBLIC_KEY_FILE).read_text(),
                    sign_type="RSA2",
                    config=AliPayConfig(timeout=TIMEOUT_SECONDS),
                )
                client._gateway = s.ALIPAY_GATEWAY
                self._alipay = client
            return self._alipay

    def identify(self, code: str) -> str:
        try:
            result = self._client().server_api(
                "alipay.system.oauth.token", None, grant_type="authorization_code", code=code
            )
        except AliPayValidationError as exc:
            log.warning("alipay oauth: reply signature invalid")
            raise LoginUnavailable("bad signature") from exc
        except AliPayException as exc:
            # error_response (signed or not): the SDK keeps the raw reply as the message.
            sub_code = _alipay_sub_code(exc)
            log.info("alipay oauth refused: sub_code=%s", sub_code)
            if sub_code in ALIPAY_CODE_REJECTED:
                raise LoginRejected(sub_code) from exc
            raise LoginUnavailable(sub_code or "error_response") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            log.warning("alipay oauth unreachable: %s", type(exc).__name__)
            raise LoginUnavailable(type(exc).__name__) from exc
        except (ValueError, AttributeError, TypeError) as exc:  # not JSON / not UTF-8
            raise LoginUnavailable(f"unreadable reply ({type(exc).__name__})") from exc
        if not isinstance(result, dict):
            raise LoginUnavailable("reply is not an object")
        code_field = result.get("code")
        if code_field is not None and str(code_field) != "10000":
            sub_code = str(result.get("sub_code") or code_field)
            if sub_code in ALIPAY_CODE_REJECTED:
                raise LoginRejected(sub_code)
            raise LoginUnavailable(sub_code)
        user_id = result.get("user_id") or result.get("open_id")
        if not isinstance(user_id, str) or not user_id or len(user_id) > 64:
            raise LoginUnavailable("oauth reply without a usable user id")
        return user_id


def _alipay_sub_code(exc: AliPayException) -> str:
    raw = getattr(exc, "_AliPayException__message", "")
    try:
        body = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    for value in body.values():
        if isinstance(value, dict) and ("sub_code" in value or "code" in value):
            return str(value.get("sub_code") or value.get("code") or "")
    return ""


class IdentityProviders:
    """The providers of one settings object (one app), built on first use."""

    def __init__(self, settings: Config) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._providers: dict[str, IdentityProvider] = {}

    def get(self, channel: str) -> IdentityProvider:
        with self._lock:
            provider = self._providers.get(channel)
            if provider is None:
                if channel == "wechat":
                    provider = WeChatIdentity(self.settings)
                elif channel == "alipay":
                    provider = AlipayIdentity(self.settings)
                else:
                    raise ValueError(f"unknown login channel {channel!r}")
                self._providers[channel] = provider
            return provider


def providers_for(extensions: dict[str, Any], settings: Config) -> IdentityProviders:
    """The app's providers, rebuilt when the app's settings object is replaced (tests)."""
    current = extensions.get("identity_providers")
    if not isinstance(current, IdentityProviders) or current.settings is not settings:
        current = IdentityProviders(settings)
        extensions["identity_providers"] = current
    return current
