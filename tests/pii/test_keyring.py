"""Where the keys come from; without keys the app does not start (api/pii/keyring.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api import create_app
from api.config import Config
from api.pii import keyring
from api.pii.crypto import PiiKeyError
from tests.conftest import TEST_PII_INDEX_KEYS, TEST_PII_KEYS

PRODUCTION = {
    "WECHAT_API_BASE": "https://api.weixin.qq.com/",
    "WECHAT_PAY_API_BASE": "https://api.mch.weixin.qq.com/",
    "ALIPAY_GATEWAY": "https://openapi.alipay.com/gateway.do",
    "SECRET_KEY": "x" * 40,
}


@pytest.fixture(autouse=True)
def _keep_installed_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyring, "_installed", keyring._installed)


def test_a_production_start_without_keys_refuses_with_its_message(tmp_path: Path) -> None:
    settings = Config.from_env({**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    with pytest.raises(PiiKeyError) as caught:
        create_app(settings)
    assert "PII keys missing" in str(caught.value)
    assert "PII_KEYS_FILE" in str(caught.value)


def test_production_does_not_pick_up_the_local_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.config.INSTANCE_DIR", tmp_path)
    assert keyring.write_key_file(tmp_path / "pii.keys")
    production = Config.from_env(PRODUCTION)
    with pytest.raises(PiiKeyError, match="PII keys missing"):
        keyring.load_keyring(production)
    # The sandbox configuration reads the file `make run` made.
    ring = keyring.load_keyring(Config.from_env({}))
    assert ring.current_key_id == "k1" and ring.current_index_key_id == "i1"


def test_keys_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    assert keyring.write_key_file(path)
    assert not keyring.write_key_file(path)  # never overwritten
    assert path.stat().st_mode & 0o077 == 0
    ring = keyring.load_keyring(Config.from_env({**PRODUCTION, "PII_KEYS_FILE": str(path)}))
    assert (ring.data_key_ids, ring.index_key_ids) == (("k1",), ("i1",))
    # A variable in the environment wins over the file's line; order = current first.
    two = f"k9:{'MQ' * 21}MQ=,{TEST_PII_KEYS}".replace("MQMQ", "MT")
    env = {**PRODUCTION, "PII_KEYS_FILE": str(path), "PII_KEYS": f"{TEST_PII_KEYS}"}
    ring = keyring.load_keyring(Config.from_env(env))
    assert ring.data_key_ids == ("t1",) and ring.index_key_ids == ("i1",)
    del two
    ring = keyring.load_keyring(
        Config.from_env(
            {**PRODUCTION, "PII_KEYS": TEST_PII_KEYS, "PII_INDEX_KEYS": TEST_PII_INDEX_KEYS}
        )
    )
    assert ring.current_index_key_id == "ti1"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("k1", "<key id>:<base64 key>"),
        ("k1:not base64!", "not valid base64"),
        ("k1:c2hvcnQ=", "32 bytes"),
    ],
)
def test_malformed_keys_are_refused(keys: str, message: str) -> None:
    env = {**PRODUCTION, "PII_KEYS": keys, "PII_INDEX_KEYS": TEST_PII_INDEX_KEYS}
    with pytest.raises(PiiKeyError, match=message):
        keyring.load_keyring(Config.from_env(env))
