"""Bearer tokens 登录令牌: signed and expiring, with the account kind inside.

A token is an itsdangerous `URLSafeTimedSerializer` dump of `{"k": kind, "id": account_id}`
signed with `SECRET_KEY` and a salt per kind, so a resident token can never be replayed as a
staff token even if the payload were edited (the salt is part of the key). Tokens are
stateless: the API keeps no session table and any process can verify them (DESIGN.md, "Growing
past one machine"); a staff token stops working as soon as the account is deactivated because
the guard reloads the account on every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

TokenKind = Literal["resident", "staff"]
KINDS: tuple[TokenKind, ...] = ("resident", "staff")
_SALTS = {"resident": "ssi.token.resident.v1", "staff": "ssi.token.staff.v1"}


class TokenInvalid(Exception):
    """The token is forged, malformed, of another kind or expired (`expired` says which)."""

    def __init__(self, *, expired: bool = False) -> None:
        super().__init__("token expired" if expired else "token invalid")
        self.expired = expired


@dataclass(frozen=True)
class TokenClaims:
    kind: TokenKind
    account_id: int


@lru_cache(maxsize=16)
def _serializer(secret_key: str, kind: TokenKind) -> URLSafeTimedSerializer:
    """One serializer per (key, kind), kept: every authenticated request verifies a token, and
    building the serializer cost about a fifth of the verification. It holds no per-token
    state (itsdangerous builds its signer per call), so sharing it across threads is safe."""
    return URLSafeTimedSerializer(secret_key, salt=_SALTS[kind])


def issue_token(*, secret_key: str, kind: TokenKind, account_id: int) -> str:
    return str(_serializer(secret_key, kind).dumps({"k": kind, "id": account_id}))


def read_token(*, secret_key: str, kind: TokenKind, token: str, max_age: int) -> TokenClaims:
    """Verify signature, kind and age; raise `TokenInvalid` on any doubt."""
    try:
        payload = _serializer(secret_key, kind).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise TokenInvalid(expired=True) from exc
    except (BadSignature, ValueError, TypeError, UnicodeError) as exc:
        raise TokenInvalid() from exc
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise TokenInvalid()
    account_id = payload.get("id")
    if not isinstance(account_id, int) or isinstance(account_id, bool) or account_id <= 0:
        raise TokenInvalid()
    return TokenClaims(kind=kind, account_id=account_id)
