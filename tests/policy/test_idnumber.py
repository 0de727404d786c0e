"""Resident ID numbers: GB 11643 check character, real birth dates, masking."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.policy.idnumber import (
    InvalidIdNumber,
    age_on,
    birth_date_of,
    check_character,
    make_id_number,
    mask_id_number,
    mask_name,
    normalize_id_number,
    sex_of,
    validate_birth_not_after,
)


def test_textbook_example_with_x_check_character() -> None:
    # The GB 11643-1999 example: the check character is X (value 10).
    assert check_character("11010519491231002") == "X"
    assert normalize_id_number(" 11010519491231002x ") == "11010519491231002X"
    assert birth_date_of("11010519491231002X") == date(1949, 12, 31)
    assert sex_of("11010519491231002X") == "F"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("110105194912310021", "check_character"),  # right shape, wrong check digit
        ("37040619800230001X", "birth_date"),  # February 30th
        ("370406189912310011", "birth_date"),  # before 1900
        ("11010519491231002", "format"),  # 17 characters
        ("1101051949123100XX", "format"),  # X not at the end
        ("11010519491231002Y", "format"),
        ("", "format"),
    ],
)
def test_bad_numbers_are_rejected_with_a_reason(number: str, reason: str) -> None:
    with pytest.raises(InvalidIdNumber) as err:
        normalize_id_number(number)
    assert err.value.reason == reason
    assert err.value.message  # a Chinese message for the resident


def test_generated_numbers_validate_and_carry_birth_and_sex() -> None:
    number = make_id_number("370406", date(1975, 3, 9), 31)
    assert normalize_id_number(number) == number
    assert birth_date_of(number) == date(1975, 3, 9)
    assert sex_of(number) == "M"  # 17th digit 1 is odd


def test_a_single_changed_digit_is_caught() -> None:
    number = make_id_number("370406", date(1980, 1, 1), 17)
    changed = number[:10] + str((int(number[10]) + 1) % 10) + number[11:]
    with pytest.raises(InvalidIdNumber):
        normalize_id_number(changed)


def test_birth_after_today_is_refused() -> None:
    number = make_id_number("370406", date(2020, 6, 1), 2)
    validate_birth_not_after(number, date(2020, 6, 1))
    with pytest.raises(InvalidIdNumber) as err:
        validate_birth_not_after(number, date(2020, 5, 31))
    assert err.value.reason == "birth_date"


def test_age_in_whole_years() -> None:
    assert age_on(date(2004, 1, 1), date(2020, 1, 1)) == 16
    assert age_on(date(2004, 1, 2), date(2020, 1, 1)) == 15
    assert age_on(date(2000, 2, 29), date(2019, 2, 28)) == 18  # leap-day birthday not yet reached
    assert age_on(date(2000, 2, 29), date(2019, 3, 1)) == 19
    assert age_on(date(2021, 1, 1), date(2020, 1, 1)) == 0


def test_masks() -> None:
    assert mask_id_number("370406198001010317") == "370406********0317"
    assert mask_name("王小明") == "王*明"
    assert mask_name("王明") == "王*"
    assert mask_name("欧阳小明") == "欧**明"
    assert mask_name("王") == "王"


@given(
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)),
    seq=st.integers(min_value=0, max_value=999),
)
def test_mask_reveals_at_most_ten_characters(birth: date, seq: int) -> None:
    number = make_id_number("370406", birth, seq)
    masked = mask_id_number(number)
    assert len(masked) == 18
    assert sum(1 for c in masked if c != "*") == 10
    assert f"{birth:%Y%m%d}" not in masked
