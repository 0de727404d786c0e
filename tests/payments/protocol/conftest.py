"""Protocol-test fixtures: throw-away RSA key pairs and settings pointing at them.

The protocol tests never touch the network; they check our signing, verification and parsing
against the published vectors and against the SDKs' own code. Keys are generated per run so
these tests do not depend on the sandbox's committed test keys.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.config import Config

KEY_PAIRS = ("merchant", "wechatpay", "alipay_app", "alipay")


def _write_pair(directory: Path, name: str, *, pkcs1: bool = False) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_format = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if pkcs1
        else serialization.PrivateFormat.PKCS8
    )
    (directory / f"{name}_private_key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())
    )
    (directory / f"{name}_public_key.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("channel-keys")
    for name in KEY_PAIRS:
        # The merchant key is issued as PKCS#1 here on purpose: wechatpayv3 only reads PKCS#8,
        # and the adapter must convert.
        _write_pair(directory, name, pkcs1=name == "merchant")
    return directory


@pytest.fixture
def settings(key_dir: Path) -> Config:
    """Default settings (sandbox ids and API keys) with this run's key files."""
    return Config.from_env(
        {},
        WECHAT_PAY_API_BASE="http://127.0.0.1:9/",
        ALIPAY_GATEWAY="http://127.0.0.1:9/gateway.do",
        WECHAT_MCH_PRIVATE_KEY_FILE=str(key_dir / "merchant_private_key.pem"),
        WECHAT_PAY_PUBLIC_KEY_FILE=str(key_dir / "wechatpay_public_key.pem"),
        ALIPAY_APP_PRIVATE_KEY_FILE=str(key_dir / "alipay_app_private_key.pem"),
        ALIPAY_PUBLIC_KEY_FILE=str(key_dir / "alipay_public_key.pem"),
    )


class Keys:
    """Access to this run's key pairs by name (merchant, wechatpay, alipay_app, alipay)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def private(self, name: str) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(
            (self.directory / f"{name}_private_key.pem").read_bytes(), password=None
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def public(self, name: str) -> rsa.RSAPublicKey:
        path = self.directory / f"{name}_public_key.pem"
        key = serialization.load_pem_public_key(path.read_bytes())
        assert isinstance(key, rsa.RSAPublicKey)
        return key

    def pem(self, name: str, kind: str) -> str:
        return (self.directory / f"{name}_{kind}_key.pem").read_text()


@pytest.fixture
def keys(key_dir: Path) -> Keys:
    return Keys(key_dir)
