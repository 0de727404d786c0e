"""`EncryptedText` 加密字段: the one column type for a full ID number, a name, or a stored body
that holds them; `blind_index_column` 盲索引: the keyed hash beside a column that is looked up.

The type encrypts on the way in and decrypts on the way out (ORM, Core, and the roster's bulk
writer, which applies column types' bind processors), with the keyring `api.pii.keyring`
installed. Comparing an encrypted column in SQL is refused: ciphertexts are random per value,
so `Person.id_number == x` would silently match nothing — look up the blind index instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.types import TypeDecorator

from api.pii.keyring import current

INDEX_LENGTH = 40  # "<key id ≤16>:<22 base64url chars>"
_ALLOWED = {operators.is_, operators.is_not}
_REFUSED = "an encrypted column cannot be compared with a value in SQL: use its blind index"


def _is_value(other: Any) -> bool:
    return not isinstance(other, ClauseElement) or isinstance(other, BindParameter)


class EncryptedText(TypeDecorator[str]):
    """A text value stored AES-256-GCM encrypted (api/pii/crypto.py for the format).

    `purpose` names the column in the authenticated data; `max_chars` (if given) is the
    longest plaintext accepted, the check the plain `String(n)` column made before.
    """

    impl = Text
    cache_ok = True

    class Comparator(TypeDecorator.Comparator[str]):
        # Only comparisons with a value are refused: SQLAlchemy itself compares column objects
        # with `==` (matching result columns), which must keep working.
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            if op not in _ALLOWED and any(_is_value(o) for o in other):
                raise TypeError(_REFUSED)
            return super().operate(op, *other, **kwargs)

        def reverse_operate(self, op: Any, other: Any, **kwargs: Any) -> Any:
            if _is_value(other):
                raise TypeError(_REFUSED)
            return super().reverse_operate(op, other, **kwargs)

    comparator_factory = Comparator

    def __init__(self, purpose: str, max_chars: int | None = None) -> None:
        super().__init__()
        self.purpose = purpose
        self.max_chars = max_chars

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if self.max_chars is not None and len(value) > self.max_chars:
            raise ValueError(f"{self.purpose}: longer than {self.max_chars} characters")
        return current().encrypt(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return current().decrypt(value, self.purpose)

    def copy(self, **kw: Any) -> EncryptedText:
        return EncryptedText(self.purpose, self.max_chars)


def blind_index_type() -> String:
    """The column type of a blind index (a plain string: it is already a keyed hash)."""
    return String(INDEX_LENGTH)


def blind_index(value: str, purpose: str) -> str:
    """The blind index of `value` under the current index key (what to store)."""
    return current().index(value, purpose)


def blind_indexes(value: str, purpose: str) -> list[str]:
    """The blind index of `value` under every configured index key (what to look up)."""
    return current().indexes(value, purpose)
