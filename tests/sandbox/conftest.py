"""Fixtures for the sandbox tests: one in-process sandbox on an ephemeral port, a tiny local
notification receiver, and the vendors' own SDKs pointed at the sandbox (PROTOCOLS.md §7,
"SDK redirection hooks")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from sandbox.server import SandboxServer
from sandbox.settings import KEYS_DIR, SandboxSettings
from tests.servers import FAST, running_sandbox, serving

#: 24h4m of WeChat retries become ~1.7 s; Alipay's 24h24m about the same.
V2_ACK = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def form(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass
class Receiver:
    """A merchant's notify endpoint: records every request, answers as told per path."""

    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    answers: dict[str, Callable[[Received], tuple[int, bytes]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def default(self, received: Received) -> tuple[int, bytes]:
        if received.path.startswith("/v2"):
            return 200, V2_ACK
        if received.path.startswith("/v3"):
            return 204, b""
        return 200, b"success"

    def answer(self, path: str, status: int, body: bytes = b"") -> None:
        self.answers[path] = lambda _r: (status, body)

    def handle(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        received = Received(
            request.path, dict(request.headers), request.get_data(), time.monotonic()
        )
        with self.lock:
            self.requests.append(received)
        status, body = self.answers.get(received.path, self.default)(received)
        return Response(body, status=status)(environ, start_response)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            time.sleep(0.01)
        return self.at(path)

    def url(self, path: str) -> str:
        return self.base_url + path

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.answers.clear()


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[SandboxServer]:
    with running_sandbox() as server:
        yield server


@pytest.fixture
def sandbox(_sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    """The running sandbox, emptied before each test."""
    _sandbox_server.sandbox.reset()
    _sandbox_server.sandbox.clock.time_scale = FAST
    yield _sandbox_server
    _sandbox_server.sandbox.notifier.wait_idle(5)


@pytest.fixture(scope="session")
def _receiver_server() -> Iterator[Receiver]:
    receiver = Receiver()
    with serving(receiver.handle) as base_url:
        receiver.base_url = base_url
        yield receiver


@pytest.fixture
def receiver(_receiver_server: Receiver) -> Receiver:
    _receiver_server.reset()
    return _receiver_server


@pytest.fixture
def settings(sandbox: SandboxServer) -> SandboxSettings:
    return sandbox.sandbox.settings


@pytest.fixture
def wechatpy_pay(sandbox: SandboxServer, settings: SandboxSettings) -> Any:
    """wechatpy's own v2 client, redirected with the instance's API_BASE_URL (§1.11)."""
    from wechatpy.pay import WeChatPay

    pay = WeChatPay(
        settings.WECHAT_APPID,
        settings.WECHAT_API_KEY,
        settings.WECHAT_MCH_ID,
        mch_cert=str(KEYS_DIR / "apiclient_cert.pem"),
        mch_key=str(KEYS_DIR / "apiclient_key.pem"),
        timeout=5,
    )
    pay.API_BASE_URL = sandbox.base_url + "/"
    return pay


@pytest.fixture
def wxpay_v3(sandbox: SandboxServer, settings: SandboxSettings) -> Any:
    """wechatpayv3 in public-key mode, gateway pointed at the sandbox (§2.7)."""
    from wechatpayv3 import WeChatPay, WeChatPayType

    client = WeChatPay(
        wechatpay_type=WeChatPayType.MINIPROG,
        mchid=settings.WECHAT_MCH_ID,
        private_key=(KEYS_DIR / "merchant_private_key.pem").read_text(),
        cert_serial_no=settings.WECHAT_MCH_CERT_SERIAL,
        appid=settings.WECHAT_APPID,
        apiv3_key=settings.WECHAT_APIV3_KEY,
        public_key=(KEYS_DIR / "wechatpay_public_key.pem").read_text(),
        public_key_id=settings.WECHAT_PAY_PUBLIC_KEY_ID,
        timeout=5,
    )
    client._core._gate_way = sandbox.base_url
    return client


@pytest.fixture
def alipay_client(sandbox: SandboxServer, settings: SandboxSettings) -> Any:
    """python-alipay-sdk with its private `_gateway` pointed at the sandbox (§5.1)."""
    from alipay import AliPay
    from alipay.utils import AliPayConfig

    client = AliPay(
        appid=settings.ALIPAY_APPID,
        app_notify_url=None,
        app_private_key_string=(KEYS_DIR / "alipay_app_private_key.pem").read_text(),
        alipay_public_key_string=(KEYS_DIR / "alipay_public_key.pem").read_text(),
        sign_type="RSA2",
        config=AliPayConfig(timeout=5),
    )
    client._gateway = sandbox.base_url + "/gateway.do"
    return client


def control(sandbox: SandboxServer, path: str, payload: dict[str, Any] | None = None) -> Any:
    """POST a control call and return its JSON."""
    import requests

    response = requests.post(f"{sandbox.base_url}/sandbox/control/{path}", json=payload or {})
    assert response.status_code < 500, response.text
    return response.json()


def notifications(sandbox: SandboxServer, channel: str) -> list[dict[str, Any]]:
    import requests

    return requests.get(f"{sandbox.base_url}/sandbox/{channel}/notifications").json()
