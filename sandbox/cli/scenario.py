"""`python -m sandbox scenario district --households N [--seed S] [--concurrency 4] ...`:
pay N demo households with a realistic mix of channels, tiers and faults against a running API
and sandbox, let the API's jobs heal and refund, check that everything adds up, then inject
bill faults and reconcile the days it paid (`sandbox/scenario/reconcile.py`): every injected
difference must be found, and no other.

Exit status: 0 when there is no discrepancy, 1 otherwise (2 for bad usage). The mix is
described in `sandbox/scenario/plan.py`, the phases in `sandbox/scenario/district.py`, the
checks in `sandbox/scenario/checks.py`. Needs: the roster the API was loaded from (`--roster`,
or the demo export run through `--flask`), the `flask` command of the API's environment (the
jobs reconcile-open and process-refunds) and a finance login for the callback log
(`make run` creates finance/finance123; `--create-staff` creates it with `flask staff create`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.cli.client import ControlError, add_url_argument, fail
from sandbox.scenario import jobs
from sandbox.scenario.api_client import ApiClient, ApiError, default_api_url
from sandbox.scenario.checks import check_district
from sandbox.scenario.district import Settings, pay_district
from sandbox.scenario.plan import district_plans
from sandbox.scenario.reconcile import Reconciled, reconcile_district
from sandbox.scenario.report import as_json, print_summary
from sandbox.scenario.roster import RosterError, export_demo_roster, read_roster


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scenario", help="pay a whole demo district (mix of channels and faults)"
    )
    kinds = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    district = kinds.add_parser("district", help="N households pay; summary; discrepancies")
    add_url_argument(district)
    district.add_argument("--households", type=int, required=True, metavar="N")
    district.add_argument("--seed", type=int, default=1, help="the mix (default 1)")
    district.add_argument("--concurrency", type=int, default=4)
    district.add_argument("--api", default=default_api_url(), help="API base URL ($API_URL)")
    district.add_argument("--roster", help="roster CSV (default: export the demo district)")
    district.add_argument("--demo-scale", help="export scale (default $DEMO_SCALE or 0.005)")
    district.add_argument("--demo-seed", help="export seed (default 42, as `demo load`)")
    district.add_argument(
        "--flask", help="the API's flask command (default: python -m flask --app wsgi)"
    )
    district.add_argument("--finance-user", default="finance")
    district.add_argument("--finance-password", default="finance123")
    district.add_argument(
        "--create-staff", action="store_true", help="create the finance login first (flask)"
    )
    district.add_argument("--timeout", type=float, default=60.0, help="s per wait")
    district.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    district.add_argument(
        "--no-reconcile", action="store_true", help="skip the final reconciliation phase"
    )
    parser.set_defaults(func=run)


def _api_today() -> date:
    """The first day the callback log may stamp: the API dates its log with `APP_TODAY` when
    that is pinned (as `make run` does), else with the real Beijing date."""
    real = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    pinned = os.environ.get("APP_TODAY", "")
    return min(real, date.fromisoformat(pinned)) if pinned else real


def run(args: argparse.Namespace) -> int:
    if args.households < 1 or args.concurrency < 1:
        return fail("--households and --concurrency must be at least 1")
    flask = jobs.parse_flask_command(args.flask)
    started = time.monotonic()
    since = _api_today()
    try:
        if args.roster:
            households = read_roster(args.roster)
        else:
            exported = export_demo_roster(flask, scale=args.demo_scale, seed=args.demo_seed)
            households = read_roster(exported)
            exported.unlink(missing_ok=True)
        staff = _finance(args, flask)
        settings = Settings(
            api_url=args.api,
            sandbox_url=args.sandbox_url,
            flask_command=flask,
            concurrency=args.concurrency,
            timeout=args.timeout,
        )
        district = pay_district(
            settings, households, district_plans(args.households, args.seed), seed=args.seed
        )
        findings = check_district(district, sandbox_url=args.sandbox_url, staff=staff, since=since)
        reconciled = None if args.no_reconcile else reconcile_district(settings, district)
        if reconciled is not None:
            findings.discrepancies.extend(reconciled.discrepancies)
    except (RosterError, ControlError, ApiError, jobs.JobError) as exc:
        return fail(str(exc))
    seconds = time.monotonic() - started
    print_summary(district, findings, seconds, sys.stdout, reconciled)
    if args.json:
        summary = as_json(district, findings, seconds)
        summary["reconciliation"] = _reconciliation_json(reconciled)
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(summary, out, ensure_ascii=False, indent=2)
    return 1 if findings.discrepancies else 0


def _reconciliation_json(reconciled: Reconciled | None) -> Any:
    if reconciled is None:
        return None
    return {"injected": reconciled.injected, "runs": reconciled.reports}


def _finance(args: argparse.Namespace, flask: list[str]) -> ApiClient | None:
    """A finance login for the callback log; None (a discrepancy later) when refused."""
    if args.create_staff:
        jobs.run_plain(
            flask,
            "staff", "create", "--username", args.finance_user, "--role", "finance",
            "--password", args.finance_password, "--if-missing",
        )  # fmt: skip
    staff = ApiClient(args.api)
    try:
        staff.staff_login(args.finance_user, args.finance_password)
    except ApiError as exc:
        if exc.status != 401:
            raise
        print(f"warning: finance login refused ({exc}); callback log unchecked", file=sys.stderr)
        return None
    return staff
