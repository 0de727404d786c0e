"""Sandbox settings, read from the same environment variable names and defaults as the API.

The API's `api/config.py` defaults point at this sandbox with the keys in `sandbox/keys/`;
keeping the names and defaults identical here means both sides agree out of the box
(WECHAT_*, ALIPAY_*, APP_TODAY). Settings that only the sandbox has start with SANDBOX_.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

KEYS_DIR = Path(__file__).resolve().parent / "keys"


@dataclass(frozen=True)
class SandboxSettings:
    """Every knob of the sandbox; the field names are the environment variable names."""

    WECHAT_APPID: str = "wx8888888888888888"
    WECHAT_APPSECRET: str = "sandbox-app-secret"
    WECHAT_MCH_ID: str = "1900000109"
    WECHAT_API_KEY: str = "sandboxapikeysandboxapikey123456"
    WECHAT_APIV3_KEY: str = "sandboxapiv3keysandboxapiv3key12"
    WECHAT_PAY_PUBLIC_KEY_ID: str = "PUB_KEY_ID_0119000001092024000000000000000001"
    WECHAT_MCH_CERT_SERIAL: str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    ALIPAY_APPID: str = "2021000000000001"
    ALIPAY_SELLER_ID: str = "2088000000000001"
    #: Pins the sandbox's business date (YYYY-MM-DD) at the real Beijing time of day, like the
    #: API's clock, so a demo walking through 2019-11 gets bills dated 2019-11.
    APP_TODAY: str = ""
    SANDBOX_HOST: str = "127.0.0.1"
    SANDBOX_PORT: int = 8100
    #: Multiplies every vendor delay (retry schedule, refund settlement); 0.001 squeezes
    #: WeChat's 24h4m retry schedule into about 87 seconds.
    SANDBOX_TIME_SCALE: float = 1.0
    #: Base URL put into pay_url, qr_code and bill download URLs; empty: http://HOST:PORT.
    SANDBOX_PUBLIC_URL: str = ""
    #: How long the sandbox waits for a merchant's reply to a notification (real seconds).
    SANDBOX_NOTIFY_TIMEOUT: float = 5.0
    #: Default hang of the `timeout` fault (real seconds, not scaled).
    SANDBOX_HANG_SECONDS: float = 20.0
    #: Vendor time from a WeChat refund request to its success (scaled).
    SANDBOX_REFUND_SECONDS: float = 2.0
    #: Longest a payment notification waits for its refund under the `out_of_order` fault
    #: (real seconds).
    SANDBOX_OUT_OF_ORDER_HOLD: float = 60.0
    #: Lifetime of an Alipay bill URL (PROTOCOLS.md §5.8: 30 s; real seconds).
    SANDBOX_BILL_URL_TTL: float = 30.0
    keys_dir: Path = field(default=KEYS_DIR)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> SandboxSettings:
        """Environment first, then keyword overrides; empty variables mean "default"."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
            elif f.name.isupper() and env.get(f.name):
                raw = env[f.name]
                kind = f.type if isinstance(f.type, str) else f.type.__name__
                values[f.name] = (
                    int(raw) if kind == "int" else float(raw) if kind == "float" else raw
                )
        if "SANDBOX_KEYS_DIR" in env and "keys_dir" not in overrides:
            values["keys_dir"] = Path(env["SANDBOX_KEYS_DIR"])
        return cls(**values)

    def with_(self, **changes: Any) -> SandboxSettings:
        """A copy with some fields changed (the server uses it once it knows its port)."""
        return replace(self, **changes)

    @property
    def base_url(self) -> str:
        """Where merchants and browsers reach the sandbox (no trailing slash)."""
        return (
            self.SANDBOX_PUBLIC_URL or f"http://{self.SANDBOX_HOST}:{self.SANDBOX_PORT}"
        ).rstrip("/")

    def key_path(self, name: str) -> Path:
        """A file under `sandbox/keys/` (see keys/README.md for who holds which half)."""
        return self.keys_dir / name
