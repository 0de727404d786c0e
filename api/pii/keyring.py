"""Where the PII keys come from, and the one keyring installed in the process.

Keys never live in the database. They come from the environment or from a key file:

- `PII_KEYS="k2:<base64 32 bytes>,k1:<base64>"` — the data keys (AES-256-GCM), current first;
- `PII_INDEX_KEYS="i1:<base64 32 bytes>"` — the blind-index keys (HMAC-SHA256), current first;
- `PII_KEYS_FILE=/path` — a file of `PII_KEYS=...` / `PII_INDEX_KEYS=...` lines (`#` comments);
  a variable set in the environment wins over the file's line.

Without keys the app refuses to start (`PiiKeyError`, its message says what to set): there is
no plain-text fallback. Only on a sandbox/test configuration (every gateway on loopback, or
TESTING) is `instance/pii.keys` read when nothing is named, the file `make run` creates
(`python -m api.pii init-keys`); a production start must name its keys.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import TYPE_CHECKING

from api.pii.crypto import Key, Keyring, PiiKeyError, encode_secret, new_secret

if TYPE_CHECKING:
    from api.config import Config

_installed: Keyring | None = None

MISSING = (
    "PII keys missing: residents' ID numbers and names are stored encrypted and the app will "
    'not start without its keys. Set PII_KEYS and PII_INDEX_KEYS ("<key id>:<base64 of 32 '
    'bytes>", current first) or PII_KEYS_FILE (a file with those two lines); see docs/pii.md. '
    "For local use `make run` creates instance/pii.keys."
)


def parse_keys(text: str, variable: str) -> list[Key]:
    """`"k2:<base64>,k1:<base64>"` → keys, in order (the first is current)."""
    keys = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        kid, sep, encoded = entry.partition(":")
        if not sep:
            raise PiiKeyError(f"{variable}: entries are <key id>:<base64 key>")
        try:
            secret = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PiiKeyError(f"{variable}: key {kid.strip()!r} is not valid base64") from exc
        keys.append(Key(kid.strip(), secret))
    return keys


def read_key_file(path: Path) -> dict[str, str]:
    """The `NAME=value` lines of a key file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PiiKeyError(f"PII_KEYS_FILE {path}: cannot be read ({exc.strerror})") from exc
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or name.strip() not in ("PII_KEYS", "PII_INDEX_KEYS"):
            raise PiiKeyError(f"PII_KEYS_FILE {path}: lines are PII_KEYS=... or PII_INDEX_KEYS=...")
        values[name.strip()] = value.strip().strip('"')
    return values


def load_keyring(settings: Config) -> Keyring:
    """The keyring the configuration names; `PiiKeyError` (with `MISSING`) when there is none."""
    from api.config import INSTANCE_DIR

    data, index = settings.PII_KEYS, settings.PII_INDEX_KEYS
    file_name = settings.PII_KEYS_FILE
    sandbox = settings.TESTING or settings.points_at_sandbox()
    if not file_name and not (data and index) and sandbox and (INSTANCE_DIR / "pii.keys").exists():
        file_name = str(INSTANCE_DIR / "pii.keys")
    if file_name:
        from_file = read_key_file(Path(file_name))
        data = data or from_file.get("PII_KEYS", "")
        index = index or from_file.get("PII_INDEX_KEYS", "")
    if not data or not index:
        raise PiiKeyError(MISSING)
    return Keyring(parse_keys(data, "PII_KEYS"), parse_keys(index, "PII_INDEX_KEYS"))


def install(keyring: Keyring) -> None:
    """Make `keyring` the one the column types use (create_app and the standalone processes)."""
    global _installed
    _installed = keyring


def current() -> Keyring:
    """The installed keyring; a process that never configured one cannot read or write PII."""
    if _installed is None:
        raise PiiKeyError("no PII keyring installed in this process (create_app installs it)")
    return _installed


def write_key_file(path: Path) -> bool:
    """Create a key file with a fresh data key and index key; False if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(
            "# PII keys (docs/pii.md). Keep this file out of backups of the database and out of\n"
            "# git; losing it loses every resident's ID number and name.\n"
            f"PII_KEYS=k1:{encode_secret(new_secret())}\n"
            f"PII_INDEX_KEYS=i1:{encode_secret(new_secret())}\n"
        )
    return True
