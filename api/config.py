"""Configuration from environment variables, each with an embedded default.

The defaults run the whole system on one laptop: SQLite under `instance/`, the database queue,
and the local sandbox (`sandbox/`) with its test keys. Production sets every variable explicitly;
`Config.from_env()` is the only place that reads the environment (DESIGN.md, contracts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"
SANDBOX_KEYS = PROJECT_ROOT / "sandbox" / "keys"
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "8100"))
_SANDBOX = f"http://127.0.0.1:{SANDBOX_PORT}"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_SECRET_KEY = "dev-only-secret-change-me"


def _default_sqlite_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'ssi.sqlite3'}"


@dataclass
class Config:
    """Every setting the application reads; field names are the environment variable names."""

    DATABASE_URL: str = field(default_factory=_default_sqlite_url)
    QUEUE_URL: str = ""  # empty: the database-backed queue
    SECRET_KEY: str = DEFAULT_SECRET_KEY
    TOKEN_TTL_SECONDS: int = 7200
    APP_TODAY: str = ""  # YYYY-MM-DD; sandbox and demo only
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"
    # WeChat mini-program and WeChat Pay (API v2 key and v3 settings).
    WECHAT_APPID: str = "wx8888888888888888"
    WECHAT_APPSECRET: str = "sandbox-app-secret"
    WECHAT_MCH_ID: str = "1900000109"
    WECHAT_API_KEY: str = "sandboxapikeysandboxapikey123456"
    WECHAT_API_BASE: str = f"{_SANDBOX}/"
    WECHAT_PAY_API_BASE: str = f"{_SANDBOX}/"
    WECHAT_PAY_VERSION: str = "v2"
    WECHAT_MCH_CERT_FILE: str = ""
    WECHAT_MCH_KEY_FILE: str = ""
    WECHAT_APIV3_KEY: str = "sandboxapiv3keysandboxapiv3key12"
    WECHAT_PAY_PUBLIC_KEY_FILE: str = str(SANDBOX_KEYS / "wechatpay_public_key.pem")
    WECHAT_PAY_PUBLIC_KEY_ID: str = "PUB_KEY_ID_0119000001092024000000000000000001"
    WECHAT_MCH_PRIVATE_KEY_FILE: str = str(SANDBOX_KEYS / "merchant_private_key.pem")
    WECHAT_MCH_CERT_SERIAL: str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    # Alipay open platform (RSA2).
    ALIPAY_APPID: str = "2021000000000001"
    ALIPAY_SELLER_ID: str = "2088000000000001"
    ALIPAY_APP_PRIVATE_KEY_FILE: str = str(SANDBOX_KEYS / "alipay_app_private_key.pem")
    ALIPAY_PUBLIC_KEY_FILE: str = str(SANDBOX_KEYS / "alipay_public_key.pem")
    ALIPAY_GATEWAY: str = f"{_SANDBOX}/gateway.do"
    # Operations.
    ORDER_TTL_MINUTES: int = 30
    RECONCILE_AFTER_MINUTES: int = 5
    # A refund still `processing` this long (its notification may be lost) is queried.
    RECONCILE_REFUNDS_AFTER_MINUTES: int = 10
    REFUND_MAX_SENDS: int = 3
    # Daily reconciliation (对账, api/reconciliation): yesterday's bills from this Beijing hour
    # on (PROTOCOLS §6.1: fetch after 10:00), asked again this often while not ready.
    RECONCILE_DAILY_HOUR: int = 10
    RECONCILE_BILL_RETRY_MINUTES: int = 10
    # Throttling (api.throttle; README "Throttling"). Binds: an account's own failures lock it
    # for the window; an address's failures (shared by a village's Wi-Fi, a carrier's NAT) past
    # BIND_ADDRESS_FREE_FAILURES only pause accounts that failed themselves, growing to the cap.
    BIND_MAX_FAILURES: int = 5
    BIND_FAILURE_WINDOW_SECONDS: int = 900
    BIND_ADDRESS_FREE_FAILURES: int = 50
    # Staff password guesses: a username from one address is locked after its failures; the
    # username from anywhere only pauses, growing to the cap; an address, whatever usernames it
    # tries, is locked past STAFF_LOGIN_ADDRESS_MAX_FAILURES.
    STAFF_LOGIN_MAX_FAILURES: int = 5
    STAFF_LOGIN_WINDOW_SECONDS: int = 900
    STAFF_LOGIN_ADDRESS_MAX_FAILURES: int = 50
    THROTTLE_DELAY_CAP_SECONDS: int = 60
    # Reverse proxies in front of gunicorn that set X-Forwarded-For/-Proto (0: none). Bind
    # throttling counts failures per client address, so behind a load balancer this must be set.
    PROXY_HOPS: int = 0
    # A pooled PostgreSQL connection idle longer than this is pinged before use (api.db).
    DATABASE_PING_AFTER_IDLE_MS: int = 500
    LOG_LEVEL: str = "INFO"
    # The CJK font embedded in PDFs (api/documents/pdf.py); empty: the Debian packages' paths.
    CJK_FONT_FILE: str = ""
    TESTING: bool = False
    # Keys of residents' identities at rest (api/pii, docs/pii.md): never in the database.
    PII_KEYS: str = field(default="", repr=False)  # "k2:<base64>,k1:<base64>", current first
    PII_INDEX_KEYS: str = field(default="", repr=False)  # blind-index keys, same format
    PII_KEYS_FILE: str = ""  # a file of PII_KEYS=... / PII_INDEX_KEYS=... lines

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Config:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
            elif f.name in env and env[f.name] != "":
                raw = env[f.name]
                if f.type in ("int", int):
                    values[f.name] = int(raw)
                elif f.type in ("bool", bool):
                    values[f.name] = raw.lower() in ("1", "true", "yes")
                else:
                    values[f.name] = raw
        return cls(**values)

    def points_at_sandbox(self) -> bool:
        """True when every gateway is on loopback: the local sandbox or a test double."""
        bases = (self.WECHAT_API_BASE, self.WECHAT_PAY_API_BASE, self.ALIPAY_GATEWAY)
        return all(urlparse(b).hostname in _LOOPBACK for b in bases)

    def validate(self) -> None:
        """Refuse settings that are only safe against the sandbox when real gateways are named.

        A default secret would let anyone mint resident tokens, and a pinned date would apply
        the wrong year's rules to real money; both are fine on a laptop and fatal in production.
        """
        if self.WECHAT_PAY_VERSION not in ("v2", "v3"):
            raise ValueError("WECHAT_PAY_VERSION must be v2 or v3")
        if self.points_at_sandbox() or self.TESTING:
            return
        if self.SECRET_KEY == DEFAULT_SECRET_KEY or len(self.SECRET_KEY) < 32:
            raise ValueError("SECRET_KEY must be set (32+ characters) when real gateways are used")
        if self.APP_TODAY:
            raise ValueError("APP_TODAY is for the sandbox and demo only")

    def as_flask(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
