"""The district scenario's last phase: inject bill faults, reconcile the days it paid, and
check that reconciliation finds exactly what was injected.

Runs after the checks (an unknown trade is, on purpose, a gateway order the API never made,
which the order checks would flag). For each channel, on the latest Beijing day the scenario
paid on, the sandbox is told to show one order's 订单金额 one yuan high (`bill_amount` →
`amount_mismatch`), to leave one order out (`bill_omit` → `missing_channel`) and to take a
payment nobody ordered (`unknown-trade` → `unknown_trade`); then `flask reconcile run --json`
runs for every (channel, day) paid. Every other difference is a discrepancy: the healed
notifications, refunds and paid-after-close orders of the mix must all reconcile as matched.
Items made by an earlier run of the same day are not new and not counted again (`new_items`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.cli.client import ControlClient
from sandbox.scenario import jobs
from sandbox.scenario.district import DistrictRun, OrderRun, Settings

BEIJING = ZoneInfo("Asia/Shanghai")
INJECTED = (("bill_amount", "amount_mismatch"), ("bill_omit", "missing_channel"))


@dataclass
class Reconciled:
    reports: list[dict[str, Any]] = field(default_factory=list)
    injected: dict[str, dict[str, int]] = field(default_factory=dict)  # "channel day" → counts
    discrepancies: list[str] = field(default_factory=list)


def _paid_day(control: ControlClient, order: OrderRun) -> str | None:
    gateway = control.get(f"/sandbox/control/orders/{order.channel}/{order.out_trade_no}")
    paid_at = gateway.get("paid_at")
    if not paid_at:
        return None
    return datetime.fromisoformat(paid_at).astimezone(BEIJING).date().isoformat()


def reconcile_district(settings: Settings, run: DistrictRun) -> Reconciled:
    control = ControlClient(settings.sandbox_url)
    result = Reconciled()
    days: dict[str, dict[str, list[OrderRun]]] = defaultdict(lambda: defaultdict(list))
    for order in run.orders:
        day = _paid_day(control, order)
        if day is not None:
            days[order.channel][day].append(order)
    today = control.get("/sandbox/control/settings").get("today")
    expected: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for channel, by_day in days.items():
        day = max(by_day)
        plain = [o for o in by_day[day] if o.expected == "paid" and not o.faults]
        for (fault, outcome), order in zip(INJECTED, plain[: len(INJECTED)], strict=False):
            control.post(
                "/sandbox/control/faults", {"faults": [fault], "out_trade_no": order.out_trade_no}
            )
            expected[(channel, day)][outcome] += 1
        if today in (None, day):
            control.post("/sandbox/control/unknown-trade", {"channel": channel, "amount_fen": 100})
            expected[(channel, day)]["unknown_trade"] += 1
    for channel, by_day in sorted(days.items()):
        for day in sorted(by_day):
            wanted = expected[(channel, day)]
            result.injected[f"{channel} {day}"] = dict(wanted)
            try:
                report = jobs.run_json(
                    settings.flask_command, "reconcile", "run", "--channel", channel,
                    "--date", day, "--json",
                )  # fmt: skip
            except jobs.JobError as exc:
                result.discrepancies.append(f"reconcile {channel} {day}: {exc}")
                continue
            result.reports.append(report)
            counts = report.get("counts", {})
            for outcome, n in wanted.items():
                if counts.get(outcome, 0) < n:
                    result.discrepancies.append(
                        f"reconcile {channel} {day}: injected {n} {outcome}, found "
                        f"{counts.get(outcome, 0)}"
                    )
            if report.get("new_items", 0) != sum(wanted.values()):
                others = {k: v for k, v in counts.items() if v and k != "matched"}
                result.discrepancies.append(
                    f"reconcile {channel} {day}: {report.get('new_items')} new difference(s), "
                    f"{sum(wanted.values())} injected (counts: {others})"
                )
    return result
