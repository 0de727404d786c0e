"""`get_channel`: the version switch, one adapter per settings object, nothing built early."""

from __future__ import annotations

import gc
import weakref

import pytest

from api.config import Config
from api.payments.channels import ChannelName, get_channel
from api.payments.channels.alipay import AlipayChannel
from api.payments.channels.wechat_v2 import WeChatV2Channel
from api.payments.channels.wechat_v3 import WeChatV3Channel


def _settings(**overrides: str) -> Config:
    # Key files that do not exist: proves no SDK client is built by get_channel itself.
    return Config.from_env(
        {},
        WECHAT_MCH_PRIVATE_KEY_FILE="/nonexistent/merchant.pem",
        WECHAT_PAY_PUBLIC_KEY_FILE="/nonexistent/wechatpay.pem",
        ALIPAY_APP_PRIVATE_KEY_FILE="/nonexistent/app.pem",
        ALIPAY_PUBLIC_KEY_FILE="/nonexistent/alipay.pem",
        **overrides,
    )


def test_wechat_version_picks_the_adapter() -> None:
    assert isinstance(get_channel(_settings(), ChannelName.WECHAT), WeChatV2Channel)
    assert isinstance(
        get_channel(_settings(WECHAT_PAY_VERSION="v3"), ChannelName.WECHAT), WeChatV3Channel
    )
    assert isinstance(get_channel(_settings(), "alipay"), AlipayChannel)


def test_same_settings_same_adapter_other_settings_other_adapter() -> None:
    first, second = _settings(), _settings()
    assert get_channel(first, ChannelName.WECHAT) is get_channel(first, "wechat")
    assert get_channel(first, ChannelName.WECHAT) is not get_channel(second, ChannelName.WECHAT)


def test_adapters_are_dropped_with_their_settings() -> None:
    settings = _settings()
    adapter = weakref.ref(get_channel(settings, ChannelName.ALIPAY))
    assert adapter() is not None
    del settings
    gc.collect()
    assert adapter() is None


def test_settings_still_compare_and_export_as_before() -> None:
    settings = _settings()
    get_channel(settings, ChannelName.WECHAT)
    assert settings == _settings()
    assert "_payment_channel_adapters" not in settings.as_flask()


@pytest.mark.parametrize(("name", "version"), [("unionpay", "v2"), ("wechat", "v4")])
def test_unknown_channel_or_version_is_an_error(name: str, version: str) -> None:
    with pytest.raises(ValueError):
        get_channel(_settings(WECHAT_PAY_VERSION=version), name)
