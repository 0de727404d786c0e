"""The encrypted value format and the blind index (api/pii/crypto.py)."""

from __future__ import annotations

import base64

import pytest

from api.pii.crypto import Key, Keyring, PiiError, PiiKeyError, key_id_of

K1 = Key("k1", b"1" * 32)
K2 = Key("k2", b"2" * 32)
I1 = Key("i1", b"a" * 32)
I2 = Key("i2", b"b" * 32)
ID = "370406199001010317"


def test_round_trip_carries_the_key_id_and_a_fresh_nonce() -> None:
    ring = Keyring([K1], [I1])
    first, second = ring.encrypt(ID, "p"), ring.encrypt(ID, "p")
    assert first.startswith("1:k1:") and key_id_of(first) == "k1"
    assert first != second  # random nonce per value
    assert ID not in first
    assert ring.decrypt(first, "p") == ID == ring.decrypt(second, "p")
    assert ring.decrypt(ring.encrypt("王小明", "n"), "n") == "王小明"


@pytest.mark.parametrize("position", [5, 10, 30, -1])
def test_a_tampered_ciphertext_raises(position: int) -> None:
    ring = Keyring([K1], [I1])
    stored = ring.encrypt(ID, "p")
    char = stored[position]
    tampered = stored[:position] + ("A" if char != "A" else "B") + stored[position + 1 :]
    if position == -1:
        tampered = stored[:-1] + ("A" if stored[-1] != "A" else "B")
    with pytest.raises(PiiError):
        ring.decrypt(tampered, "p")


def test_a_value_moved_to_another_column_or_truncated_raises() -> None:
    ring = Keyring([K1], [I1])
    stored = ring.encrypt(ID, "persons.id_number")
    with pytest.raises(PiiError, match="tampered"):
        ring.decrypt(stored, "persons.name")
    with pytest.raises(PiiError, match=r"truncated|malformed"):
        ring.decrypt(stored[:16], "persons.id_number")
    with pytest.raises(PiiError, match="not an encrypted value"):
        ring.decrypt(ID, "persons.id_number")  # a plain value never reads as itself


def test_a_value_under_an_old_key_reads_and_new_values_use_the_current_key() -> None:
    old = Keyring([K1], [I1]).encrypt(ID, "p")
    rotating = Keyring([K2, K1], [I1])
    assert rotating.decrypt(old, "p") == ID
    assert rotating.encrypt(ID, "p").startswith("1:k2:")
    with pytest.raises(PiiError, match="not configured"):
        Keyring([K2], [I1]).decrypt(old, "p")
    # The key id is authenticated: relabelling a k1 value as k2 does not decrypt.
    with pytest.raises(PiiError):
        rotating.decrypt(old.replace("1:k1:", "1:k2:"), "p")


def test_blind_index_is_deterministic_keyed_and_per_key() -> None:
    ring = Keyring([K1], [I2, I1])
    value = ring.index(ID, "persons.id_number")
    assert value == ring.index(ID, "persons.id_number") and value.startswith("i2:")
    assert ring.indexes(ID, "persons.id_number") == [
        value,
        Keyring([K1], [I1]).index(ID, "persons.id_number"),
    ]
    assert ring.index("370406199001010325", "persons.id_number") != value
    assert len(value) <= 40 and ID not in value


@pytest.mark.parametrize(
    ("data", "index", "message"),
    [
        ([], [I1], "PII_KEYS"),
        ([K1], [], "PII_INDEX_KEYS"),
        ([K1, Key("k1", b"3" * 32)], [I1], "twice"),
        ([K1], [Key("k1", b"3" * 32)], "different key ids"),
    ],
)
def test_bad_keyrings_are_refused(data: list[Key], index: list[Key], message: str) -> None:
    with pytest.raises(PiiKeyError, match=message):
        Keyring(data, index)


def test_keys_must_be_32_bytes_and_named_plainly() -> None:
    with pytest.raises(PiiKeyError, match="32 bytes"):
        Key("k1", base64.b64decode("c2hvcnQ="))
    with pytest.raises(PiiKeyError, match="key id"):
        Key("k:1", b"1" * 32)
    assert "1111" not in repr(K1)
