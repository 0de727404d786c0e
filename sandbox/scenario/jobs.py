"""The API's own jobs, run as its `flask` command in a subprocess.

The sandbox may not import `api/`, and `make run` starts no payments worker, so the scenario
runs the jobs a worker would (`payments reconcile-open`, `payments process-refunds`) itself,
exactly as an operator would type them. The command is configurable (`--flask`), e.g. to run
inside a container; the subprocess inherits the environment (DATABASE_URL, gateway URLs,
PUBLIC_BASE_URL, APP_TODAY), so it must be the environment the API runs with.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The repository root (where `wsgi.py` lives), the working directory of the subprocess.
REPO_ROOT = Path(__file__).resolve().parents[2]


class JobError(RuntimeError):
    """The flask command failed (non-zero exit) or printed no JSON report."""


def default_flask_command() -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi"]


def parse_flask_command(text: str | None) -> list[str]:
    return shlex.split(text) if text else default_flask_command()


def run_plain(flask_command: Sequence[str], *args: str, timeout: float = 600) -> str:
    """Run `flask … ARGS`; return its standard output (JobError on failure)."""
    command = [*flask_command, *args]
    try:
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JobError(f"{shlex.join(command)}: {exc}") from exc
    if result.returncode != 0:
        raise JobError(f"{shlex.join(command)} exited {result.returncode}: {result.stderr[-800:]}")
    return result.stdout


def run_json(flask_command: Sequence[str], *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run `flask … ARGS` and return the JSON object it printed last."""
    command = [*flask_command, *args]
    stdout = run_plain(flask_command, *args, timeout=timeout)
    for line in reversed(stdout.strip().splitlines()):
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict):
            return report
    raise JobError(f"{shlex.join(command)} printed no JSON report: {stdout[-300:]}")


def reconcile_open(flask_command: Sequence[str]) -> dict[str, int]:
    """`payments reconcile-open --older-than-minutes 0`: ask the channel about every open
    order now (the default threshold of RECONCILE_AFTER_MINUTES would skip fresh ones)."""
    report = run_json(flask_command, "payments", "reconcile-open", "--older-than-minutes", "0")
    return {str(k): int(v) for k, v in report.items()}


def process_refunds(flask_command: Sequence[str]) -> dict[str, Any]:
    """`payments process-refunds`: send the refunds decided by the settlement."""
    return run_json(flask_command, "payments", "process-refunds", "--limit", "500")
