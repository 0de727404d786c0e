"""Fen ↔ yuan at the Alipay and bill edge: exact, and no float ever gets through."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.payments.money import fen_to_yuan_str, yuan_str_to_fen


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [(0, "0.00"), (1, "0.01"), (10, "0.10"), (26000, "260.00"), (12345, "123.45")],
)
def test_fen_to_yuan(fen: int, yuan: str) -> None:
    assert fen_to_yuan_str(fen) == yuan


@pytest.mark.parametrize(
    ("yuan", "fen"),
    [("0.01", 1), ("260.00", 26000), ("260.5", 26050), ("260", 26000), ("0.30", 30)],
)
def test_yuan_to_fen(yuan: str, fen: int) -> None:
    assert yuan_str_to_fen(yuan) == fen


@pytest.mark.parametrize(
    "bad",
    [
        "260.001",
        "-1.00",
        "+1.00",
        "1e2",
        "NaN",
        "Infinity",
        " 1.00",
        "1.00 ",
        "",
        ".5",
        "1.",
        "01.00",
        "１.00",
        "1,000.00",
        "0x10",
    ],
)
def test_yuan_garbage_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        yuan_str_to_fen(bad)


@pytest.mark.parametrize("bad", [0.3, Decimal("0.30"), 30, None, b"0.30"])
def test_yuan_must_be_a_string(bad: Any) -> None:
    with pytest.raises(TypeError):
        yuan_str_to_fen(bad)


@pytest.mark.parametrize("bad", [0.1 + 0.2, 30.0, True, "30", Decimal(30)])
def test_fen_must_be_an_int(bad: Any) -> None:
    with pytest.raises(TypeError):
        fen_to_yuan_str(bad)


def test_negative_fen_is_refused() -> None:
    with pytest.raises(ValueError):
        fen_to_yuan_str(-1)


@given(st.integers(min_value=0, max_value=10**12))
def test_round_trip(fen: int) -> None:
    yuan = fen_to_yuan_str(fen)
    assert yuan_str_to_fen(yuan) == fen
    assert Decimal(yuan) * 100 == fen
    assert len(yuan.split(".")[1]) == 2
