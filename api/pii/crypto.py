"""AES-256-GCM per value and an HMAC-SHA256 blind index, each tagged with its key id.

A stored value is `1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>` (no padding): the leading
`1` is the format version, the 96-bit nonce is random per value (`os.urandom`), and the
additional authenticated data binds the value to its format, key id and purpose (the column,
e.g. `persons.id_number`), so a ciphertext moved into another column, or given another key id,
fails to decrypt instead of reading as something else. A value that does not decrypt raises
`PiiError` — never returns garbage.

A blind index value is `<key id>:<base64url(HMAC-SHA256(key, purpose ‖ 0 ‖ value)[:16])>`:
128 bits (no collision among a few million residents), deterministic so an exact match is one
equality on an indexed column; the key id lets both index keys be looked up while the index
is rebuilt under a new one (docs/pii.md, "Rotating the blind-index key").
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "1"
KEY_BYTES = 32
NONCE_BYTES = 12
INDEX_BYTES = 16
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")


class PiiError(Exception):
    """A stored identity that cannot be read: tampered, truncated, or under an unknown key."""


class PiiKeyError(Exception):
    """The keys are missing or malformed (the app refuses to start)."""


@dataclass(frozen=True)
class Key:
    """One named 256-bit key."""

    key_id: str
    secret: bytes = b""

    def __post_init__(self) -> None:
        if not KEY_ID.fullmatch(self.key_id):
            raise PiiKeyError(f"PII key id {self.key_id!r}: use 1-16 of A-Z a-z 0-9 _ -")
        if len(self.secret) != KEY_BYTES:
            raise PiiKeyError(f"PII key {self.key_id}: must be {KEY_BYTES} bytes (base64)")

    def __repr__(self) -> str:  # never print a secret
        return f"Key({self.key_id!r})"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """The data keys and the blind-index keys of the process; the first of each is current.

    Every other key still decrypts (or is still looked up), which is what makes rotation safe
    with the app running: values are re-encrypted in batches while both keys read.
    """

    def __init__(self, data_keys: Sequence[Key], index_keys: Sequence[Key]) -> None:
        if not data_keys:
            raise PiiKeyError("no PII data key (PII_KEYS)")
        if not index_keys:
            raise PiiKeyError("no PII blind-index key (PII_INDEX_KEYS)")
        for kind, keys in (("PII_KEYS", data_keys), ("PII_INDEX_KEYS", index_keys)):
            ids = [k.key_id for k in keys]
            if len(set(ids)) != len(ids):
                raise PiiKeyError(f"{kind}: a key id appears twice")
        if {k.key_id for k in data_keys} & {k.key_id for k in index_keys}:
            raise PiiKeyError("PII_KEYS and PII_INDEX_KEYS must use different key ids")
        self.data_key_ids = tuple(k.key_id for k in data_keys)
        self.index_key_ids = tuple(k.key_id for k in index_keys)
        self.current_key_id = self.data_key_ids[0]
        self.current_index_key_id = self.index_key_ids[0]
        self._ciphers = {k.key_id: AESGCM(k.secret) for k in data_keys}
        self._index_keys = [(k.key_id, k.secret) for k in index_keys]
        self._prefixes = {kid: f"{VERSION}:{kid}:" for kid in self.data_key_ids}

    def encrypt(self, value: str, purpose: str) -> str:
        """`value` under the current key, as stored (`1:<key id>:<base64>`)."""
        kid = self.current_key_id
        prefix = self._prefixes[kid]
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(
            nonce, value.encode("utf-8"), (prefix + purpose).encode("ascii")
        )
        return prefix + _b64(nonce + sealed)

    def decrypt(self, stored: str, purpose: str) -> str:
        """The plaintext of a stored value; `PiiError` if it is not exactly what was written."""
        version, _, rest = stored.partition(":")
        kid, _, payload = rest.partition(":")
        if version != VERSION or not payload:
            raise PiiError(f"{purpose}: not an encrypted value of format {VERSION}")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PiiError(f"{purpose}: value under key {kid!r}, which is not configured")
        try:
            raw = _unb64(payload)
        except (binascii.Error, ValueError) as exc:
            raise PiiError(f"{purpose}: malformed encrypted value") from exc
        if _b64(raw) != payload:  # a non-canonical encoding is an altered value too
            raise PiiError(f"{purpose}: malformed encrypted value")
        if len(raw) < NONCE_BYTES + 16:
            raise PiiError(f"{purpose}: truncated encrypted value")
        aad = (f"{VERSION}:{kid}:" + purpose).encode("ascii")
        try:
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise PiiError(f"{purpose}: encrypted value fails authentication (tampered)") from exc
        return plain.decode("utf-8")

    def index(self, value: str, purpose: str) -> str:
        """The blind index of `value` under the current index key."""
        kid, secret = self._index_keys[0]
        return _index(kid, secret, value, purpose)

    def indexes(self, value: str, purpose: str) -> list[str]:
        """The blind index of `value` under every index key, current first: what to look up
        (one value normally, two while the index is being rebuilt under a new key)."""
        return [_index(kid, secret, value, purpose) for kid, secret in self._index_keys]


def _index(kid: str, secret: bytes, value: str, purpose: str) -> str:
    mac = hmac.digest(secret, purpose.encode("ascii") + b"\x00" + value.encode("utf-8"), "sha256")
    return f"{kid}:{_b64(mac[:INDEX_BYTES])}"


def key_id_of(stored: str) -> str:
    """The key id a stored value (encrypted or blind index) was made under."""
    if stored[:2] == f"{VERSION}:":
        return stored[2:].partition(":")[0]
    return stored.partition(":")[0]


def new_secret() -> bytes:
    return os.urandom(KEY_BYTES)


def encode_secret(secret: bytes) -> str:
    return base64.b64encode(secret).decode("ascii")
