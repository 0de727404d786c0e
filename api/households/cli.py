"""CLI of the households domain: `flask --app wsgi roster ...` and `flask --app wsgi demo ...`.

`roster import` exit codes (documented in README and bench/README):
  0  written (with `--skip-bad`, bad rows were skipped and reported: see the warning count);
     or a dry run that found no bad row
  1  refused: the file has bad rows and `--skip-bad` was not given; NOTHING was written
  2  the file could not be read as a roster (format, encoding, header) or bad usage
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from flask.cli import AppGroup

from api import clock
from api.audit.service import record as audit
from api.db import analyze, get_db
from api.households.district import ensure_district

if TYPE_CHECKING:  # roster.py needs api.policy: imported when a command runs, not at app start
    from api.households.roster import ImportReport

# The demo district `make run` loads (scripts/run-local) and `demo export-roster` writes by
# default: one scale and seed, so the exported file is the district the API is serving.
DEMO_SCALE, DEMO_SEED = 0.005, 42

F = TypeVar("F", bound=Callable[..., Any])

roster_cli = AppGroup("roster", help="Roster import.")
demo_cli = AppGroup("demo", help="Demo district.")

EXIT_OK, EXIT_REFUSED, EXIT_UNREADABLE = 0, 1, 2


def _summary(report: ImportReport) -> str:
    if report.refused:
        return (
            f"{report.file_name}：共 {report.rows} 行，其中 {report.bad_rows} 行有错误、"
            f"{report.rows - report.bad_rows} 行正确；未写入任何数据"
        )
    verb = "将" if report.dry_run else ""
    return (
        f"{report.file_name}：共 {report.rows} 行；{verb}新增 {report.created} 人，"
        f"{verb}更新 {report.updated} 人，未变 {report.unchanged} 人，"
        f"{verb}新建 {report.households_created} 户；错误 {report.bad_rows} 行，"
        f"跳过 {report.skipped} 行"
    )


@roster_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-bad", is_flag=True, help="Keep the good rows; report and skip bad ones.")
@click.option("--year", type=int, default=2020, show_default=True, help="Policy year (categories).")
@click.option("--dry-run", is_flag=True, help="Validate and count, write nothing.")
@click.option("--source", default="roster", show_default=True, help="Recorded on categories.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option(
    "--errors-file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write EVERY bad row (line, code, column, message) to this CSV file; the report "
    "itself lists the first 2000 and counts all per reason.",
)
def import_command(
    file: Path,
    skip_bad: bool,
    year: int,
    dry_run: bool,
    source: str,
    as_json: bool,
    errors_file: Path | None,
) -> None:
    """Import a roster FILE (CSV UTF-8 or XLSX): all rows or nothing, unless --skip-bad."""
    from api.households.roster import import_roster
    from api.households.roster_files import RosterFileError, read_roster

    database = get_db()
    with contextlib.ExitStack() as stack:
        sink = None
        if errors_file is not None:
            try:
                sink = stack.enter_context(errors_file.open("w", encoding="utf-8-sig", newline=""))
            except OSError as exc:
                click.echo(f"无法写入错误清单文件 {errors_file}：{exc.strerror}", err=True)
                sys.exit(EXIT_UNREADABLE)
        try:
            with database.job() as session:
                ensure_district(session)
                report = import_roster(
                    session,
                    read_roster(file),
                    skip_bad=skip_bad,
                    source=source,
                    year=year,
                    dry_run=dry_run,
                    file_name=file.name,
                    actor="cli",
                    errors_to=sink,
                )
                if not (report.dry_run or report.refused):
                    analyze(session)  # a bulk write: fresh statistics for the planner
        except RosterFileError as exc:
            with database.job() as session:
                audit(
                    session,
                    actor="cli",
                    action="roster.import",
                    subject=f"file:{file.name}"[:64],
                    outcome="refused",
                    detail={"file_name": file.name, "file_error": exc.code},
                )
            click.echo(f"{file.name}：{exc.message} [{exc.code}]", err=True)
            sys.exit(EXIT_UNREADABLE)

    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        _echo_errors(report, errors_file)
        click.echo(_summary(report))
    if report.refused:
        click.echo(
            f"导入被拒绝：{report.bad_rows} 行有错误，未写入任何数据（可改正后重试，"
            "或用 --skip-bad 只导入正确的行）",
            err=True,
        )
        sys.exit(EXIT_REFUSED)
    if report.dry_run and report.bad_rows and not skip_bad:
        sys.exit(EXIT_REFUSED)
    if report.skipped:
        click.echo(f"警告：跳过了 {report.skipped} 行有错误的数据", err=True)


def _echo_errors(report: ImportReport, errors_file: Path | None) -> None:
    """The first errors line by line, then the count per reason (bounded, whatever the file)."""
    errors = report.errors
    for error in errors:
        click.echo(str(error), err=True)
    if not errors:
        return
    if errors.truncated:
        where = f"完整清单见 {errors_file}" if errors_file else "完整清单可用 --errors-file 写出"
        click.echo(f"……另有 {errors.truncated} 条错误未逐条列出（{where}）", err=True)
    click.echo("错误原因统计：", err=True)
    for code, count in sorted(errors.counts.items(), key=lambda item: (-item[1], item[0])):
        click.echo(f"  {code}\t{count}", err=True)


@roster_cli.command("init-district")
def init_district_command() -> None:
    """Create the plan's 10 towns and 280 villages (idempotent; targets from the table)."""
    with get_db().job() as session:
        towns, villages = ensure_district(session)
    click.echo(f"新建镇街 {towns} 个，村居 {villages} 个")


def _scale_option(help_text: str) -> Callable[[F], F]:
    """`--scale` of the demo commands: one default ($DEMO_SCALE, what `make run` loads) so the
    district exported is the district loaded."""
    return click.option(
        "--scale",
        type=float,
        default=DEMO_SCALE,
        envvar="DEMO_SCALE",
        show_default=True,
        help=help_text,
    )


@demo_cli.command("load")
@_scale_option("1 = 437,854 persons. Default: $DEMO_SCALE, as `make run` loads.")
@click.option("--seed", type=int, default=DEMO_SEED, show_default=True)
@click.option("--if-empty", is_flag=True, help="Do nothing when towns already exist.")
def demo_load_command(scale: float, seed: int, if_empty: bool) -> None:
    """Load the demo district: the plan's towns and villages and synthetic households."""
    from sqlalchemy import func, select

    from api.households.demo import load_demo
    from api.households.models import Town

    with get_db().job() as session:
        if if_empty and session.scalar(select(func.count()).select_from(Town)):
            click.echo("已有镇街数据，跳过演示数据加载（--if-empty）")
            return
        report = load_demo(session, scale=scale, seed=seed, today=clock.today())
        analyze(session)  # a bulk write: fresh statistics for the planner
    click.echo(_summary(report))
    if report.bad_rows:  # the generator only makes valid rows: this is a bug, say so loudly
        for error in report.errors[:20]:
            click.echo(str(error), err=True)
        sys.exit(EXIT_REFUSED)


@demo_cli.command("export-roster")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_scale_option("Default: $DEMO_SCALE, the district `make run` loads.")
@click.option("--seed", type=int, default=DEMO_SEED, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default=None,
              help="Default: from the file extension.")  # fmt: skip
def demo_export_command(file: Path, scale: float, seed: int, fmt: str | None) -> None:
    """Write the demo district as a roster FILE in the import format."""
    from api.households.demo import generate_roster
    from api.households.roster_files import write_roster

    count = write_roster(file, generate_roster(scale, seed, today=clock.today()), fmt=fmt)
    click.echo(f"已写出 {count} 行到 {file}")
