"""Fakes of the login gateways: a jscode2session server and an Alipay `gateway.do`.

Each is a real HTTP server on 127.0.0.1 (an ephemeral port) so the SDKs run unchanged:
wechatpy's requests session and python-alipay-sdk's urlopen talk to them exactly as they would
to the vendors. The Alipay fake signs its replies with a key pair generated for this run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from tests.auth.login_fakes import FakeAlipay, FakeWeChat, Server, query_params, use_settings


@pytest.fixture
def fake_wechat() -> Iterator[FakeWeChat]:
    fake = FakeWeChat()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/sns/jscode2session"):
                self.send_error(404)
                return
            status, body = fake.answer(query_params(self.path))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")  # as WeChat does
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = Server(Handler)
    fake.base_url = server.url + "/"
    yield fake
    server.close()


@pytest.fixture(scope="session")
def alipay_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Throw-away key pairs: the app's own and the fake gateway's ("Alipay's")."""
    directory = tmp_path_factory.mktemp("auth-alipay-keys")
    paths: dict[str, Path] = {}
    for name in ("app", "alipay"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = directory / f"{name}_private.pem"
        public = directory / f"{name}_public.pem"
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        paths[f"{name}_private"] = private
        paths[f"{name}_public"] = public
    return paths


@pytest.fixture
def fake_alipay(alipay_keys: dict[str, Path]) -> Iterator[FakeAlipay]:
    key = serialization.load_pem_private_key(
        alipay_keys["alipay_private"].read_bytes(), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    fake = FakeAlipay(private_key=key)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, text = fake.answer(query_params(self.path))
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = Server(Handler)
    fake.base_url = server.url + "/gateway.do"
    yield fake
    server.close()


@pytest.fixture
def login_app(
    app: Flask, fake_wechat: FakeWeChat, fake_alipay: FakeAlipay, alipay_keys: dict[str, Path]
) -> Flask:
    """The app pointed at the fake gateways."""
    use_settings(
        app,
        WECHAT_API_BASE=fake_wechat.base_url,
        ALIPAY_GATEWAY=fake_alipay.base_url,
        ALIPAY_APP_PRIVATE_KEY_FILE=str(alipay_keys["app_private"]),
        ALIPAY_PUBLIC_KEY_FILE=str(alipay_keys["alipay_public"]),
    )
    return app
