"""Token verification with the serializers kept per (key, kind): keeping them must not let a
token cross keys or kinds, nor outlive its age."""

from __future__ import annotations

import time

import pytest

from api.auth.tokens import TokenInvalid, issue_token, read_token

KEY_A = "key-a-" + "x" * 32
KEY_B = "key-b-" + "y" * 32


def test_kept_serializers_do_not_cross_keys_or_kinds() -> None:
    resident = issue_token(secret_key=KEY_A, kind="resident", account_id=7)
    staff = issue_token(secret_key=KEY_A, kind="staff", account_id=7)
    for _ in range(2):  # the second round runs on the kept serializers
        assert (
            read_token(secret_key=KEY_A, kind="resident", token=resident, max_age=60).account_id
            == 7
        )
        assert read_token(secret_key=KEY_A, kind="staff", token=staff, max_age=60).account_id == 7
        with pytest.raises(TokenInvalid):
            read_token(secret_key=KEY_B, kind="resident", token=resident, max_age=60)
        with pytest.raises(TokenInvalid):
            read_token(secret_key=KEY_A, kind="staff", token=resident, max_age=60)
        with pytest.raises(TokenInvalid):
            read_token(secret_key=KEY_A, kind="resident", token=staff, max_age=60)


def test_kept_serializer_still_checks_age(monkeypatch: pytest.MonkeyPatch) -> None:
    token = issue_token(secret_key=KEY_A, kind="resident", account_id=8)
    assert read_token(secret_key=KEY_A, kind="resident", token=token, max_age=60).account_id == 8
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(TokenInvalid) as caught:
        read_token(secret_key=KEY_A, kind="resident", token=token, max_age=60)
    assert caught.value.expired is True
