"""Reconciliation tests reuse the payments fixtures: the live API and the in-process sandbox;
`channel_shop` runs a test for WeChat v2, v3 and Alipay."""

from collections.abc import Iterator

import pytest

from tests.payments.conftest import (  # noqa: F401
    LiveServer,
    _sandbox_server,
    live_api,
    pg_live_api,
    pg_shop,
    sandbox,
    shop,
    use_settings,
)

CHANNELS = [("wechat", "v2"), ("wechat", "v3"), ("alipay", "v2")]


@pytest.fixture(params=CHANNELS, ids=["wechat-v2", "wechat-v3", "alipay"])
def channel_shop(
    request: pytest.FixtureRequest,
    shop: LiveServer,  # noqa: F811 - the payments fixture imported above
) -> Iterator[tuple[LiveServer, str]]:
    channel, version = request.param
    app = shop.app
    saved_today = app.config.get("APP_TODAY", "")
    use_settings(app, WECHAT_PAY_VERSION=version)
    app.config["APP_TODAY"] = "2019-11-05"
    yield shop, channel
    app.config["APP_TODAY"] = saved_today
