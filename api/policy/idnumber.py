"""Resident ID numbers 居民身份证号码 (GB 11643-1999) and the masking of personal data.

18 characters: a 6-digit region code, the birth date YYYYMMDD (digits 7–14), a 3-digit sequence
whose last digit is odd for men, and an ISO 7064 MOD 11-2 check character (`X` for 10).
DOMAIN.md: a number whose check character is wrong is rejected with a clear error, never stored.
"""

from __future__ import annotations

import re
from datetime import date
from operator import mul
from typing import ClassVar

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
# ASCII only: `\d` would also accept full-width (１２３) and other Unicode digits, which
# `int()` reads happily, so such a number would pass and be stored in a non-canonical form.
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
EARLIEST_BIRTH = date(1900, 1, 1)


class InvalidIdNumber(ValueError):
    """An ID number that cannot be a real one; `reason` is stable, `message` is Chinese."""

    MESSAGES: ClassVar[dict[str, str]] = {
        "format": "身份证号码应为18位，前17位为数字，最后一位为数字或X",
        "birth_date": "身份证号码中的出生日期无效",
        "check_character": "身份证号码校验位错误",
    }

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.message = self.MESSAGES[reason]
        super().__init__(self.message)


def check_character(first17: str) -> str:
    """The MOD 11-2 check character of the first 17 digits."""
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise InvalidIdNumber("format")
    # map/mul instead of a generator: this runs once per row of a 437,854-person import.
    total = sum(map(mul, _WEIGHTS, map(int, first17)))
    return _CHECK[total % 11]


def _birth(number: str) -> date:
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as exc:
        raise InvalidIdNumber("birth_date") from exc
    if born < EARLIEST_BIRTH:
        raise InvalidIdNumber("birth_date")
    return born


def normalize_id_number(raw: str) -> str:
    """Strip and upper-case `raw`, then check shape, birth date and check character."""
    if not isinstance(raw, str):
        raise InvalidIdNumber("format")
    number = raw.strip().upper()
    if not _SHAPE.fullmatch(number):
        raise InvalidIdNumber("format")
    _birth(number)
    if check_character(number[:17]) != number[17]:
        raise InvalidIdNumber("check_character")
    return number


def birth_date_of(id_number: str) -> date:
    return _birth(normalize_id_number(id_number))


def sex_of(id_number: str) -> str:
    """'M' or 'F' from the parity of the 17th digit."""
    return "M" if int(normalize_id_number(id_number)[16]) % 2 else "F"


def validate_birth_not_after(id_number: str, today: date) -> None:
    """A birth date after today cannot belong to a resident we insure."""
    if birth_date_of(id_number) > today:
        raise InvalidIdNumber("birth_date")


def age_on(birth: date, on: date) -> int:
    """Whole years (周岁) on `on`; 0 for a date before birth.

    A person born on Feb 29 turns a year older on Mar 1 in common years (the birthday has not
    happened while the date is before Mar 1), which is how 周岁 is counted in practice.
    """
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return max(years, 0)


def mask_id_number(number: str) -> str:
    """`370406********0317`: region code and last four only (what a family member may see)."""
    if len(number) < 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_name(name: str) -> str:
    """`王明`→`王*`, `王小明`→`王*明`, longer names keep the first and last character."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def make_id_number(region6: str, birth: date, seq3: int) -> str:
    """A valid ID number for demo data and tests (region code, birth date, sequence)."""
    if len(region6) != 6 or not region6.isdigit() or not 0 <= seq3 <= 999:
        raise ValueError("region6 must be 6 digits and seq3 within 0..999")
    first17 = f"{region6}{birth:%Y%m%d}{seq3:03d}"
    return first17 + check_character(first17)
