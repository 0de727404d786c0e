"""Issue 10, defect 3 (CLI side): export and replay refuse dates that would overflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask


@pytest.mark.parametrize(
    "dates",
    [
        ["--from", "0001-01-01", "--to", "2020-01-01"],
        ["--from", "2020-01-01", "--to", "9999-12-31"],
    ],
)
def test_export_refuses_dates_out_of_bounds(app: Flask, tmp_path: Path, dates: list[str]) -> None:
    out = tmp_path / "return.csv"
    result = app.test_cli_runner().invoke(
        args=["outbox", "export", "--insurance", "medical", *dates, "--format", "csv", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "use a date from 1900-01-01 to 2100-12-31" in result.output
    assert not out.exists()


def test_replay_refuses_year_9999(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["outbox", "replay", "--since", "2020-01-01", "--until", "9999-12-31"]
    )
    assert result.exit_code == 2, result.output
