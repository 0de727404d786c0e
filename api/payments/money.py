"""Fen ↔ yuan conversion at the gateway edge, with `Decimal` and never `float`.

Money is stored and computed as integer fen (分) everywhere in this project. Only Alipay's API
(`total_amount`, `refund_amount`, notification `total_amount`/`refund_fee`) and both channels'
bill files speak yuan (元) strings with two decimals (PROTOCOLS.md §5.2, §6.2); this module is
the one place those strings are made and read. A float anywhere near an amount is a bug
(`0.1 + 0.2` reaches Alipay as `0.30000000000000004`, PROTOCOLS.md §5.2), so both functions
refuse floats outright instead of rounding them.
"""

from __future__ import annotations

import re
from decimal import Decimal

_YUAN = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]{1,2})?")


def fen_to_yuan_str(fen: int) -> str:
    """`26000` → `"260.00"`; refuses bools, floats and negative amounts."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"amount in fen must be an int, got {type(fen).__name__}")
    if fen < 0:
        raise ValueError("amount in fen must not be negative")
    yuan, cents = divmod(fen, 100)
    return f"{yuan}.{cents:02d}"


def yuan_str_to_fen(yuan: str) -> int:
    """`"260.00"` / `"260.5"` / `"260"` → fen; refuses floats, signs, >2 decimals and garbage.

    Leading zeros ("007.00"), exponents, spaces, "+"/"-" and "NaN"/"Infinity" are all refused:
    a gateway that sends such a value is not one we understand.
    """
    if not isinstance(yuan, str):
        raise TypeError(f"amount in yuan must be a str, got {type(yuan).__name__}")
    if not _YUAN.fullmatch(yuan):
        raise ValueError(f"not a yuan amount with at most 2 decimals: {yuan!r}")
    fen = Decimal(yuan) * 100
    # The pattern guarantees an exact integer; the check keeps that promise visible.
    if fen != fen.to_integral_value():  # pragma: no cover
        raise ValueError(f"not a whole number of fen: {yuan!r}")
    return int(fen)
