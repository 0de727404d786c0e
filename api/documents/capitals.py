"""Amounts in capitals 金额大写: what a receipt writes beside the figures.

The forms of the People's Bank's rules for filling in bills (《正确填写票据和结算凭证的基本规定》):
- digits 零壹贰叁肆伍陆柒捌玖, units 拾佰仟, groups 万 and 亿, then 元, 角, 分;
- 拾 always has its digit (壹拾元整, never 拾元整): nothing can be written in front of it;
- a run of zeros inside the amount is one 零 (壹仟零伍元整, 壹拾万零伍元整), a zero group
  between two groups too (壹亿零伍万元整); trailing zeros of the yuan part are not written;
- an amount ending at 元 ends 元整; at 角 it ends 角整 (the rules allow 整 there, and it leaves
  no room to add a 分); an amount with 分 has no 整; 角 zero before a 分 is 零 (壹元零伍分);
- an amount under one yuan has no 元 (伍角整, 伍分); nothing at all is 零元整.
Money is integer fen (STYLE.md 8); a negative amount is refused, never written.
"""

from __future__ import annotations

DIGITS = "零壹贰叁肆伍陆柒捌玖"
_UNITS = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿", "万亿")


def _group(value: int) -> str:
    """A group of at most four digits (1..9999), with inner zeros as one 零, trailing none."""
    out = ""
    zero = False
    for position in range(3, -1, -1):
        digit = value // 10**position % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += DIGITS[digit] + _UNITS[position]
    return out


def _yuan(value: int) -> str:
    """The whole-yuan part (> 0) in capitals, without 元."""
    groups: list[int] = []
    while value:
        groups.append(value % 10_000)
        value //= 10_000
    if len(groups) > len(_GROUPS):
        raise ValueError("amount too large to write in capitals")
    out = ""
    zero = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero = bool(out)
            continue
        if out and (zero or group < 1000):
            out += "零"
        out += _group(group) + _GROUPS[index]
        zero = False
    return out


def fen_in_capitals(amount_fen: int) -> str:
    """`amount_fen` written in capitals: 26000 → 贰佰陆拾元整, 105 → 壹元零伍分."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool):
        raise TypeError("amount_fen must be an int")
    if amount_fen < 0:
        raise ValueError("a negative amount is not written in capitals")
    yuan, rest = divmod(amount_fen, 100)
    jiao, fen = divmod(rest, 10)
    if amount_fen == 0:
        return "零元整"
    out = _yuan(yuan) + "元" if yuan else ""
    if jiao == 0 and fen == 0:
        return out + "整"
    if jiao:
        out += DIGITS[jiao] + "角"
    elif yuan:
        out += "零"  # 壹元零伍分: the 角 place is zero
    if fen:
        return out + DIGITS[fen] + "分"
    return out + "整"
