"""`get_channel(settings, name)`: the one place that picks an adapter.

WECHAT_PAY_VERSION=v2|v3 chooses the WeChat adapter; the core never branches on it. Adapters
are cached per settings object (one per app), so their lazily built SDK clients and HTTP
sessions are reused; nothing is constructed at import time (STYLE.md "What they all avoid").
"""

from __future__ import annotations

import threading

from api.config import Config
from api.payments.channels.base import ChannelName, PaymentChannel

_lock = threading.Lock()
# Adapters live in the settings object's own __dict__ (not a module-level map): they hold
# their settings, so a global cache would keep every Config ever seen alive, and Config is an
# unhashable dataclass that cannot key a WeakKeyDictionary anyway.
_ATTRIBUTE = "_payment_channel_adapters"


def _build(settings: Config, key: str) -> PaymentChannel:
    if key == "alipay":
        from api.payments.channels.alipay import AlipayChannel

        return AlipayChannel(settings)
    if key == "wechat:v2":
        from api.payments.channels.wechat_v2 import WeChatV2Channel

        return WeChatV2Channel(settings)
    if key == "wechat:v3":
        from api.payments.channels.wechat_v3 import WeChatV3Channel

        return WeChatV3Channel(settings)
    raise ValueError(f"unknown channel {key!r}")


def _key(settings: Config, name: ChannelName | str) -> str:
    channel = ChannelName(name)
    if channel is ChannelName.ALIPAY:
        return "alipay"
    version = (settings.WECHAT_PAY_VERSION or "v2").strip().lower()
    if version not in ("v2", "v3"):
        raise ValueError(f"WECHAT_PAY_VERSION must be v2 or v3, not {version!r}")
    return f"wechat:{version}"


def get_channel(settings: Config, name: ChannelName | str) -> PaymentChannel:
    """The adapter for `name` under `settings` (the same object for the same settings)."""
    key = _key(settings, name)
    with _lock:
        adapters: dict[str, PaymentChannel] = vars(settings).setdefault(_ATTRIBUTE, {})
        if key not in adapters:
            adapters[key] = _build(settings, key)
        return adapters[key]
