"""Alipay open-platform wire format: request-signature checks, signed JSON replies, yuan.

- Requests (§5.3): every parameter except `sign`, **including** `sign_type`, empty values
  dropped, ASCII-sorted, `k=v` joined with raw (URL-decoded) values, SHA256withRSA with the
  app's public key.
- Replies (§5.4): `{"<method>_response": {...}, "sign": "..."}` where the signature covers
  the exact text of the inner object as emitted (the SDK brace-matches it out of the body).
- Notifications (§5.5): `sign` and `sign_type` excluded from the signed string.
- Amounts are yuan strings with at most 2 decimals, read with Decimal only (§5.2).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import crypto

_YUAN = re.compile(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$")
MAX_FEN = 100_000_000_00  # 1e8 yuan, Alipay's Number(9,2) ceiling


class BadAmount(ValueError):
    """Not a positive yuan amount with at most two decimals."""


def yuan_to_fen(value: Any) -> int:
    """`"12.30"` → 1230. Refuses more than 2 decimals, signs, exponents and zero.

    biz_content is parsed with `parse_float=Decimal`, so a JSON number arrives here with its
    exact text: `12.3` passes, the `0.30000000000000004` a float-summing client sends (§5.2)
    does not.
    """
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        value = str(value)
    text = value
    if not isinstance(text, str) or not _YUAN.match(text.strip()):
        raise BadAmount(f"bad amount {text!r}")
    try:
        fen = Decimal(text.strip()) * 100
    except InvalidOperation as exc:
        raise BadAmount(f"bad amount {text!r}") from exc
    if fen != fen.to_integral_value() or fen <= 0 or fen > MAX_FEN:
        raise BadAmount(f"amount out of range {text!r}")
    return int(fen)


def fen_to_yuan(fen: int) -> str:
    """1230 → `"12.30"` (Decimal, never float)."""
    return str((Decimal(fen) / 100).quantize(Decimal("0.01")))


def request_string_to_sign(params: Mapping[str, str]) -> str:
    """§5.3: all but `sign`, sign_type included, empty values excluded, sorted, raw."""
    return "&".join(
        f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] not in ("", None)
    )


def notification_string_to_sign(params: Mapping[str, str]) -> str:
    """§5.5: `sign` and `sign_type` excluded; the sandbox never posts empty values."""
    return "&".join(
        f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type") and params[k]
    )


def verify_request(params: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    signature = params.get("sign") or ""
    if not signature:
        return False
    return crypto.rsa_verify(public_key, request_string_to_sign(params).encode("utf-8"), signature)


def signed_reply(
    method: str | None, inner: Mapping[str, Any], key: rsa.RSAPrivateKey | None
) -> bytes:
    """The reply body; `key=None` leaves it unsigned (auth failures: the SDK then raises)."""
    name = f"{method.replace('.', '_')}_response" if method else "error_response"
    text = json.dumps(dict(inner), ensure_ascii=False, separators=(",", ":"))
    body = '{"' + name + '":' + text
    if key is not None:
        body += ',"sign":"' + crypto.rsa_sign(key, text.encode("utf-8")) + '"'
    return (body + "}").encode("utf-8")


def success(**fields: Any) -> dict[str, Any]:
    return {"code": "10000", "msg": "Success", **fields}


def business_error(sub_code: str, sub_msg: str, **fields: Any) -> dict[str, Any]:
    """40004: the call was fine, the business said no (§5.4)."""
    return {
        "code": "40004",
        "msg": "Business Failed",
        "sub_code": sub_code,
        "sub_msg": sub_msg,
        **fields,
    }


def invalid_arguments(sub_code: str, sub_msg: str) -> dict[str, Any]:
    return {"code": "40002", "msg": "Invalid Arguments", "sub_code": sub_code, "sub_msg": sub_msg}


def missing_arguments(sub_code: str, sub_msg: str) -> dict[str, Any]:
    return {
        "code": "40001",
        "msg": "Missing Required Arguments",
        "sub_code": sub_code,
        "sub_msg": sub_msg,
    }
