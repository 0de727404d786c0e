"""`flask roster import` / `flask demo ...`: exit codes, output, and what ends up written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from api.households.models import Person, Town
from api.households.roster_files import COLUMNS

MIXED = Path(__file__).parent / "fixtures" / "roster_mixed.csv"


def _persons(app: Flask) -> int:
    with app.app_context():
        session = app.extensions["database"].session()
        return session.scalar(select(func.count()).select_from(Person)) or 0


def _run(app: Flask, *args: str):  # type: ignore[no-untyped-def]
    app.config["APP_TODAY"] = "2019-11-05"
    return app.test_cli_runner().invoke(args=list(args))


def test_import_with_bad_rows_exits_1_and_writes_nothing(app: Flask) -> None:
    result = _run(app, "roster", "import", str(MIXED))
    assert result.exit_code == 1
    assert "第 4 行：" in result.output and "[id_number_check]" in result.output
    assert "第 14 行：" in result.output
    assert "导入被拒绝" in result.output
    assert _persons(app) == 0


def test_import_skip_bad_exits_0_with_a_warning(app: Flask) -> None:
    result = _run(app, "roster", "import", str(MIXED), "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "新增 4 人" in result.output and "跳过 10 行" in result.output
    assert "警告：跳过了 10 行" in result.output
    assert _persons(app) == 4


def test_import_json_report(app: Flask) -> None:
    result = _run(app, "roster", "import", str(MIXED), "--skip-bad", "--json")
    assert result.exit_code == 0
    start = result.output.index("{")
    report = json.loads(result.output[start : result.output.rindex("}") + 1])
    assert report["created"] == 4 and report["skipped"] == 10
    assert report["errors"][0] == {
        "line": 4,
        "code": "id_number_check",
        "message": report["errors"][0]["message"],
        "column": "id_number",
    }


def test_unreadable_file_exits_2(app: Flask, tmp_path: Path) -> None:
    bad_header = tmp_path / "r.csv"
    bad_header.write_text("town,village\n", encoding="utf-8")
    result = _run(app, "roster", "import", str(bad_header))
    assert result.exit_code == 2 and "[bad_header]" in result.output
    other = tmp_path / "r.json"
    other.write_text("{}", encoding="utf-8")
    assert _run(app, "roster", "import", str(other)).exit_code == 2


def test_dry_run_writes_nothing(app: Flask) -> None:
    assert _run(app, "roster", "import", str(MIXED), "--dry-run").exit_code == 1
    result = _run(app, "roster", "import", str(MIXED), "--dry-run", "--skip-bad")
    assert result.exit_code == 0 and "将新增 4 人" in result.output
    assert _persons(app) == 0


def test_demo_load_export_and_reimport(app: Flask, tmp_path: Path) -> None:
    result = _run(app, "demo", "load", "--scale", "0.0005", "--seed", "3", "--if-empty")
    assert result.exit_code == 0, result.output
    loaded = _persons(app)
    assert loaded == 219  # sum of round(medical target × 0.0005) over the 10 towns
    with app.app_context():
        session = app.extensions["database"].session()
        assert session.scalar(select(func.count()).select_from(Town)) == 10

    skipped = _run(app, "demo", "load", "--scale", "0.0005", "--if-empty")
    assert skipped.exit_code == 0 and "跳过" in skipped.output
    assert _persons(app) == loaded

    for fmt in ("csv", "xlsx"):
        path = tmp_path / f"roster.{fmt}"
        exported = _run(app, "demo", "export-roster", str(path), "--scale", "0.0005", "--seed", "3")
        assert exported.exit_code == 0
        if fmt == "csv":
            assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
        again = _run(app, "roster", "import", str(path))
        assert again.exit_code == 0, again.output
        assert "新增 0 人" in again.output and f"未变 {loaded} 人" in again.output
    assert _persons(app) == loaded


def test_xlsx_that_is_not_a_zip_or_is_truncated_exits_2(app: Flask, tmp_path: Path) -> None:
    """Issue 10, defect 7: a BadZipFile traceback and exit 1 (the README says exit 2)."""
    import openpyxl

    not_zip = tmp_path / "not_zip.xlsx"
    not_zip.write_bytes(b"town,village\n")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(list(COLUMNS))
    good = tmp_path / "good.xlsx"
    workbook.save(good)
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path in (not_zip, truncated):
        result = _run(app, "roster", "import", str(path))
        assert result.exit_code == 2, (path.name, result.output, result.exception)
        assert "[unreadable]" in result.output and "Traceback" not in result.output
        assert "不是有效的 XLSX" in result.output


def test_a_hundred_thousand_bad_rows_are_counted_all_and_listed_bounded(
    app: Flask, tmp_path: Path
) -> None:
    """Issue 10, defect 7: 100,000 bad rows took 1 GB and printed every error. Now the first
    2000 are listed, every reason is counted, and --errors-file gets the full list."""
    roster = tmp_path / "bad.csv"
    with roster.open("w", encoding="utf-8") as out:
        out.write(",".join(COLUMNS) + "\n")
        for i in range(100_000):
            id_number = f"X{i}" if i % 2 else ""  # id_number_format / missing_id_number
            out.write(f"西集镇,赵官庄村,{i % 500:04d},{id_number},张三,,0,0,0,0,\n")
    full = tmp_path / "errors.csv"

    result = _run(app, "roster", "import", str(roster), "--errors-file", str(full))
    as_json = _run(app, "roster", "import", str(roster), "--json")

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert sum(line.startswith("第 ") for line in lines) == 2000
    assert len(result.output.encode()) < 400_000
    assert "另有 98000 条错误未逐条列出" in result.output
    assert "  id_number_format\t50000" in lines and "  missing_id_number\t50000" in lines
    with full.open(encoding="utf-8-sig") as listed:
        rows = list(csv.reader(listed))
    assert rows[0] == ["line", "code", "column", "message"] and len(rows) == 100_001
    assert rows[-1][:3] == ["100001", "id_number_format", "id_number"]
    report = json.loads(as_json.output[as_json.output.index("{") : as_json.output.rindex("}") + 1])
    assert report["bad_rows"] == 100_000 and len(report["errors"]) == 2000
    assert report["errors_not_listed"] == 98_000
    assert report["error_counts"] == {"id_number_format": 50_000, "missing_id_number": 50_000}
    assert len(as_json.output.encode()) < 1_000_000
    assert _persons(app) == 0


def test_demo_export_defaults_to_the_district_make_run_loads(app: Flask, tmp_path: Path) -> None:
    """Issue 10, defect 10: `demo export-roster` defaulted to another scale than `make run`
    loads. Both read $DEMO_SCALE with one default, and scripts/run-local passes no other."""
    from api.config import PROJECT_ROOT

    run_local = (PROJECT_ROOT / "scripts" / "run-local").read_text(encoding="utf-8")
    assert "demo load --if-empty" in run_local and "--scale" not in run_local

    runner = app.test_cli_runner()
    app.config["APP_TODAY"] = "2019-11-05"
    loaded = runner.invoke(args=["demo", "load", "--seed", "3"], env={"DEMO_SCALE": "0.0005"})
    assert loaded.exit_code == 0, loaded.output
    path = tmp_path / "roster.csv"
    exported = runner.invoke(
        args=["demo", "export-roster", str(path), "--seed", "3"], env={"DEMO_SCALE": "0.0005"}
    )
    assert exported.exit_code == 0, exported.output
    assert len(path.read_text(encoding="utf-8").splitlines()) - 1 == _persons(app) == 219

    defaults = {}
    for name in ("load", "export-roster"):
        command = app.cli.get_command(None, "demo").get_command(None, name)  # type: ignore[union-attr]
        scale = next(p for p in command.params if p.name == "scale")
        defaults[name] = (scale.default, scale.envvar)
    assert defaults["load"] == defaults["export-roster"] == (0.005, "DEMO_SCALE")
