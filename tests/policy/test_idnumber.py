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


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("１１０１０５１９４９１２３１００２X", "format"),  # full-width digits: \d would pass them
        ("1101051949123100٢X", "format"),  # an Arabic-Indic digit
        ("11010519A91231002X", "format"),  # a letter inside
        ("110105194912310020X", "format"),  # 19 characters
        ("37040619990229001X", "birth_date"),  # 1999 is not a leap year
        ("370406198013010011", "birth_date"),  # month 13
        ("370406198001000011", "birth_date"),  # day 0
    ],
)
def test_more_bad_numbers(number: str, reason: str) -> None:
    with pytest.raises(InvalidIdNumber) as err:
        normalize_id_number(number)
    assert err.value.reason == reason


def test_the_messages_people_read() -> None:
    with pytest.raises(InvalidIdNumber) as err:
        normalize_id_number("110105194912310021")
    assert err.value.message == "身份证号码校验位错误"
    assert str(err.value) == err.value.message
    assert isinstance(err.value, ValueError)  # callers may treat it as a bad value


def test_leap_day_birth_is_valid_and_lowercase_x_is_normalised() -> None:
    number = make_id_number("370406", date(2000, 2, 29), 123)
    assert birth_date_of(number) == date(2000, 2, 29)
    with_x = next(
        make_id_number("370406", date(1988, 8, 8), seq)
        for seq in range(1000)
        if make_id_number("370406", date(1988, 8, 8), seq).endswith("X")
    )
    assert normalize_id_number(with_x.lower()) == with_x


def test_check_character_refuses_anything_but_17_ascii_digits() -> None:
    for bad in ("1101051949123100", "1101051949123100²", "11010519491231002X"):
        with pytest.raises(InvalidIdNumber):
            check_character(bad)


def test_sex_from_the_seventeenth_digit() -> None:
    assert sex_of(make_id_number("370406", date(1980, 1, 1), 10)) == "F"
    assert sex_of(make_id_number("370406", date(1980, 1, 1), 11)) == "M"


def test_make_id_number_refuses_bad_parts() -> None:
    with pytest.raises(ValueError):
        make_id_number("37040", date(1980, 1, 1), 1)
    with pytest.raises(ValueError):
        make_id_number("370406", date(1980, 1, 1), 1000)


def test_feb_29_birthday_turns_over_on_march_1_in_common_years() -> None:
    born = date(2004, 2, 29)
    assert age_on(born, date(2020, 2, 28)) == 15
    assert age_on(born, date(2020, 2, 29)) == 16  # a leap year: the birthday itself
    assert age_on(born, date(2021, 2, 28)) == 16
    assert age_on(born, date(2021, 3, 1)) == 17


@given(st.text(max_size=30))
def test_id_mask_never_reveals_more_than_ten_characters(raw: str) -> None:
    masked = mask_id_number(raw)
    assert len(masked) == len(raw)
    assert sum(1 for a, b in zip(raw, masked, strict=True) if a == b and b != "*") <= 10


@given(st.text(min_size=2, max_size=12).filter(lambda s: "*" not in s))
def test_name_mask_hides_every_inner_character(name: str) -> None:
    masked = mask_name(name)
    assert masked[0] == name[0]
    assert len(masked) == len(name)
    assert set(masked[1:-1]) <= {"*"}
    assert masked[-1] == ("*" if len(name) == 2 else name[-1])


@given(
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
    seq=st.integers(min_value=0, max_value=999),
)
def test_generated_numbers_round_trip(birth: date, seq: int) -> None:
    number = make_id_number("110105", birth, seq)
    assert normalize_id_number(number) == number
    assert birth_date_of(number) == birth
