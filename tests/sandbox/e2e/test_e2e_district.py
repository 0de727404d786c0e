"""`python -m sandbox scenario district --households 200` against the live API on SQLite (the
embedded default): every contribution paid once, every duplicate payment refunded, zero
discrepancies — checked by the scenario itself AND here, straight in the API's database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from api.payments.models import Contribution, PaymentOrder, Refund
from sandbox.scenario.jobs import REPO_ROOT
from sandbox.server import SandboxServer
from tests.sandbox.e2e.conftest import FINANCE, district_on

#: About 880 persons in 310 households, so that 200 of them owe something.
DISTRICT_SCALE = 0.002
HOUSEHOLDS = 200


@pytest.mark.slow
def test_district_scenario_pays_200_households_without_discrepancy(
    sqlite_committing_app: Flask, sandbox: SandboxServer, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.csv"
    with district_on(sqlite_committing_app, sandbox, roster, scale=DISTRICT_SCALE) as district:
        report = tmp_path / "report.json"
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable, "-m", "sandbox", "scenario", "district",
                "--households", str(HOUSEHOLDS), "--seed", "7", "--concurrency", "4",
                "--api", district.api_url, "--sandbox-url", sandbox.base_url,
                "--roster", str(roster),
                "--finance-user", FINANCE[0], "--finance-password", FINANCE[1],
                "--json", str(report),
            ],
            env=district.flask_env(),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        print(result.stdout, f"({elapsed:.1f} s)")
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(report.read_text(encoding="utf-8"))
        assert summary["discrepancies"] == []
        # The final reconciliation found exactly the bill faults it injected, nothing else.
        recon = summary["reconciliation"]
        assert recon["runs"] and {r["status"] for r in recon["runs"]} == {"completed"}
        found: Counter[str] = Counter()
        for run in recon["runs"]:
            found.update({k: v for k, v in run["counts"].items() if v and k != "matched"})
        injected: Counter[str] = Counter()
        for counts in recon["injected"].values():
            injected.update(counts)
        assert found == injected
        assert set(injected) == {"amount_mismatch", "missing_channel", "unknown_trade"}
        assert summary["paid_households"] == HOUSEHOLDS
        families = summary["plans"]["family"]
        assert families >= 1 and summary["duplicates_refunded"] == families
        healed_plans = sum(
            n
            for plan, n in summary["plans"].items()
            if set(plan.split("+")) & {"drop", "forge_signature", "amount_changed",
                                       "wrong_appid", "wrong_mch"}
        )  # fmt: skip
        assert summary["healed"] == healed_plans
        assert {"bad_signature", "amount_mismatch", "wrong_app_id", "wrong_merchant"} <= set(
            summary["rejected"]
        )

        # Independently of the scenario's own checks, in the API's database:
        paid = district.scalar(
            select(func.count()).select_from(Contribution).where(Contribution.status == "paid")
        )
        distinct = district.scalar(
            select(func.count()).select_from(
                select(Contribution.person_id, Contribution.insurance, Contribution.year)
                .where(Contribution.status == "paid")
                .distinct()
                .subquery()
            )
        )
        assert paid == distinct == summary["contributions"]  # every contribution once
        statuses = dict(
            district.rows(select(PaymentOrder.status, func.count()).group_by(PaymentOrder.status))
        )
        assert statuses == {"paid": HOUSEHOLDS, "refunded": families}
        refunds = district.rows(select(Refund.state, Refund.reason).distinct())
        assert refunds == [("succeeded", "paid_after_close")]
