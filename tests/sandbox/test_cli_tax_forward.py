"""`python -m sandbox tax-consumer …` hands every option to sandbox.tax's own parser."""

from __future__ import annotations

import pytest

from sandbox.cli import main


def test_tax_consumer_options_reach_its_own_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["tax-consumer", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--queue-url" in out and "--reject-town" in out
