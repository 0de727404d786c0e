"""Out-trade and out-refund numbers: valid for both channels, unguessable, unique."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from api.payments.channels import new_out_refund_no, new_out_trade_no

# WeChat: 6-32 of [0-9A-Za-z_-|*] (PROTOCOLS.md §1.3, §2.1); we keep to letters and digits.
VALID = re.compile(r"[0-9A-Za-z]{6,32}")


def test_numbers_fit_both_channels_and_carry_the_beijing_day() -> None:
    late_utc = datetime(2020, 1, 1, 17, 0, tzinfo=UTC)  # already 2 January in Beijing
    number = new_out_trade_no(now=late_utc)
    assert VALID.fullmatch(number)
    assert number.startswith("SSI20200102")
    assert len(number) == 27
    refund = new_out_refund_no(now=late_utc)
    assert VALID.fullmatch(refund) and refund.startswith("SSR20200102")


def test_numbers_do_not_repeat() -> None:
    numbers = {new_out_trade_no() for _ in range(5000)}
    assert len(numbers) == 5000


@pytest.mark.parametrize("prefix", ["", "SS-I", "SSI_", "TOOLONGPREFIX", "支付"])
def test_prefix_must_be_short_ascii_alphanumeric(prefix: str) -> None:
    with pytest.raises(ValueError):
        new_out_trade_no(prefix)
