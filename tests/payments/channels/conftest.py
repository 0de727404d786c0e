"""End-to-end fixtures: the real local sandbox in-process, and a tiny notify receiver that
verifies every notification with the adapter under test and answers with its exact reply.

The API side uses the default settings (`api/config.py`), only pointed at the ephemeral
sandbox port: the keys in `sandbox/keys/` are what both sides read, as in `make run`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from api.config import Config
from api.payments.channels import (
    NotificationRejected,
    PaymentChannel,
    PrepayRequest,
    VerifiedNotification,
    get_channel,
    new_out_trade_no,
)
from tests.servers import FAST, running_sandbox, serving

sandbox_server = pytest.importorskip("sandbox.server")
sandbox_settings = pytest.importorskip("sandbox.settings")

#: Vendor retry schedules squeezed to a couple of seconds (see tests/sandbox/conftest.py).


@dataclass
class Delivery:
    """One notification as our receiver saw and judged it."""

    path: str
    body: bytes
    note: VerifiedNotification | None
    rejected: NotificationRejected | None
    reply_status: int
    reply_body: bytes


@dataclass
class Receiver:
    """The merchant's notify endpoints, answered by the adapters under test."""

    base_url: str = ""
    channels: dict[str, PaymentChannel] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        channel = self.channels["alipay" if "alipay" in request.path else "wechat"]
        note, rejected = None, None
        try:
            note = channel.parse_notification(request.headers, body, request.path)
            reply = channel.success_reply()
        except NotificationRejected as exc:
            rejected = exc
            reply = channel.failure_reply(exc.reason)
        with self.lock:
            self.deliveries.append(
                Delivery(request.path, body, note, rejected, reply.status, reply.body)
            )
        response = Response(reply.body, status=reply.status, content_type=reply.content_type)
        return response(environ, start_response)

    def url(self, path: str) -> str:
        return self.base_url + path

    def wait_for(self, count: int, timeout: float = 10.0, **match: Any) -> list[Delivery]:
        """At least `count` deliveries whose note/rejection matches (e.g. kind="refund")."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(**match)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def matching(self, *, kind: str | None = None, reason: str | None = None) -> list[Delivery]:
        with self.lock:
            found = list(self.deliveries)
        if kind is not None:
            found = [d for d in found if d.note is not None and d.note.kind == kind]
        if reason is not None:
            found = [d for d in found if d.rejected is not None and d.rejected.reason == reason]
        return found


@pytest.fixture(scope="session")
def _sandbox() -> Iterator[Any]:
    with running_sandbox() as server:
        yield server


@pytest.fixture
def sandbox(_sandbox: Any) -> Iterator[Any]:
    """The running sandbox, emptied before each test and quiet after it."""
    _sandbox.sandbox.reset()
    _sandbox.sandbox.clock.time_scale = FAST
    yield _sandbox
    _sandbox.sandbox.notifier.wait_idle(5)


@pytest.fixture(scope="session")
def _receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with serving(receiver.handle) as base_url:
        receiver.base_url = base_url
        yield receiver


@pytest.fixture
def receiver(_receiver: Receiver) -> Receiver:
    with _receiver.lock:
        _receiver.deliveries.clear()
        _receiver.channels.clear()
    return _receiver


def api_settings(sandbox: Any, **overrides: Any) -> Config:
    """The API's default settings, pointed at the in-process sandbox."""
    return Config.from_env(
        {},
        WECHAT_PAY_API_BASE=sandbox.base_url + "/",
        ALIPAY_GATEWAY=sandbox.base_url + "/gateway.do",
        **overrides,
    )


@pytest.fixture(params=["v2", "v3"])
def wechat(request: pytest.FixtureRequest, sandbox: Any, receiver: Receiver) -> PaymentChannel:
    """The WeChat adapter for each API version, wired to the receiver."""
    channel = get_channel(api_settings(sandbox, WECHAT_PAY_VERSION=request.param), "wechat")
    receiver.channels["wechat"] = channel
    return channel


@pytest.fixture
def alipay(sandbox: Any, receiver: Receiver) -> PaymentChannel:
    channel = get_channel(api_settings(sandbox), "alipay")
    receiver.channels["alipay"] = channel
    return channel


@pytest.fixture
def make_prepay(receiver: Receiver) -> Callable[..., PrepayRequest]:
    """A PrepayRequest for `channel` whose notifications reach the receiver."""

    def make(channel: str, **overrides: Any) -> PrepayRequest:
        values: dict[str, Any] = {
            "out_trade_no": new_out_trade_no(),
            "amount_fen": 26000,
            "description": "2020年城乡居民医疗保险费",
            "payer_id": "oUpF8uMEb4qRXf22hE3X68TekukE" if channel == "wechat" else None,
            "client_ip": "203.0.113.7",
            "expires_at": datetime.now(UTC) + timedelta(minutes=30),
            "notify_url": receiver.url(f"/api/v1/payments/notify/{channel}"),
        }
        values.update(overrides)
        return PrepayRequest(**values)

    return make


@pytest.fixture
def control(sandbox: Any) -> Callable[..., Any]:
    """POST a sandbox control call (what a resident or a fault trigger does) → (status, json)."""

    def call(path: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
        response = requests.post(
            f"{sandbox.base_url}/sandbox/control/{path}", json=payload or {}, timeout=10
        )
        assert response.status_code < 500, response.text
        return response.status_code, response.json()

    return call
