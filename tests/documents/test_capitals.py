"""Amounts in capitals 金额大写 (api/documents/capitals.py): the bill-filling rules' forms."""

from __future__ import annotations

import pytest

from api.documents.capitals import fen_in_capitals


@pytest.mark.parametrize(
    ("fen", "written"),
    [
        (0, "零元整"),
        (26000, "贰佰陆拾元整"),
        (81000, "捌佰壹拾元整"),
        (1000, "壹拾元整"),
        (100, "壹元整"),
        (100000, "壹仟元整"),
        (100500, "壹仟零伍元整"),
        (105000, "壹仟零伍拾元整"),
        (101000, "壹仟零壹拾元整"),
        (106000, "壹仟零陆拾元整"),
        (110000, "壹仟壹佰元整"),
        (180000, "壹仟捌佰元整"),
        (1000000, "壹万元整"),
        (1000500, "壹万零伍元整"),
        (10000500, "壹拾万零伍元整"),
        (100000000, "壹佰万元整"),
        (1001000000, "壹仟零壹万元整"),
        (10000000000, "壹亿元整"),
        (10005000000, "壹亿零伍万元整"),
        (5, "伍分"),
        (50, "伍角整"),
        (55, "伍角伍分"),
        (105, "壹元零伍分"),
        (1005, "壹拾元零伍分"),
        (26050, "贰佰陆拾元伍角整"),
        (100501, "壹仟零伍元零壹分"),
        (168032, "壹仟陆佰捌拾元叁角贰分"),
    ],
)
def test_amounts_are_written_as_bills_require(fen: int, written: str) -> None:
    assert fen_in_capitals(fen) == written


def test_a_negative_or_non_integer_amount_is_refused() -> None:
    with pytest.raises(ValueError):
        fen_in_capitals(-1)
    with pytest.raises(TypeError):
        fen_in_capitals(260.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fen_in_capitals(True)
