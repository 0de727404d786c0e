"""`python -m api.pii init-keys [PATH]`: create a local key file (no app, no database needed)."""

from __future__ import annotations

import sys
from pathlib import Path

from api.config import INSTANCE_DIR
from api.pii.keyring import write_key_file


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "init-keys" or len(argv) > 2:
        print("usage: python -m api.pii init-keys [PATH]", file=sys.stderr)
        return 2
    path = Path(argv[1]) if len(argv) == 2 else INSTANCE_DIR / "pii.keys"
    if write_key_file(path):
        print(f"created PII key file {path} (keep it out of git and of database backups)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
