"""The district summary, for the operator: what was paid, refunded, healed and rejected, and
every discrepancy (English, like the rest of the sandbox CLI; amounts in yuan)."""

from __future__ import annotations

from collections import Counter
from typing import Any, TextIO

from sandbox.scenario.checks import Findings
from sandbox.scenario.district import DistrictRun
from sandbox.scenario.journey import yuan
from sandbox.scenario.reconcile import Reconciled


def as_json(run: DistrictRun, findings: Findings, seconds: float) -> dict[str, Any]:
    return {
        "households": len(run.households),
        "paid_households": findings.paid_households,
        "skipped": dict(Counter(h.skipped for h in run.skipped)),
        "orders": dict(findings.statuses),
        "channels": dict(findings.channels),
        "plans": dict(findings.faults),
        "tiers": {str(k): v for k, v in findings.tiers.items()},
        "contributions": findings.contributions,
        "paid_fen": findings.paid_fen,
        "refunded_fen": findings.refunded_fen,
        "duplicates_refunded": findings.duplicates_refunded,
        "healed": findings.healed,
        "reconcile_open": run.reconcile,
        "refund_rounds": run.refund_rounds,
        "callback_log": dict(findings.log_outcomes),
        "rejected": dict(findings.rejected),
        "discrepancies": findings.discrepancies,
        "seconds": round(seconds, 1),
        "phase_seconds": {k: round(v, 1) for k, v in run.phase_seconds.items()},
    }


def _pairs(counter: Counter[Any] | dict[Any, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0])))


def _reconciliation_lines(reconciled: Reconciled | None) -> list[str]:
    if reconciled is None:
        return []
    injected = "; ".join(f"{k}: {_pairs(v) or '-'}" for k, v in reconciled.injected.items())
    lines = [f"  reconciliation       (injected: {injected})"]
    for report in reconciled.reports:
        counts = {k: v for k, v in report.get("counts", {}).items() if v}
        lines.append(
            f"    {report.get('channel')} {report.get('bill_date')}: {_pairs(counts) or 'empty'}"
        )
    return lines


def print_summary(
    run: DistrictRun,
    findings: Findings,
    seconds: float,
    out: TextIO,
    reconciled: Reconciled | None = None,
) -> None:
    skipped = Counter(h.skipped for h in run.skipped)
    lines = [
        f"district scenario: {len(run.households)} households in {seconds:.1f} s "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in run.phase_seconds.items())})",
        f"  paid households      {findings.paid_households}"
        + (f"  (skipped, owing nothing: {_pairs(skipped)})" if skipped else ""),
        f"  paid orders          {_pairs(findings.channels)}",
        f"  plans                {_pairs(findings.faults)}",
        f"  pension tiers        {_pairs(findings.tiers) or '-'} (yuan: members)",
        f"  orders by status     {_pairs(findings.statuses)}",
        f"  contributions        {findings.contributions}",
        f"  money                paid {yuan(findings.paid_fen)} yuan, "
        f"refunded {yuan(findings.refunded_fen)} yuan",
        f"  duplicates refunded  {findings.duplicates_refunded}",
        f"  healed               {findings.healed} (reconcile-open: "
        f"{'; '.join(_pairs(r) for r in run.reconcile)})",
        f"  rejected notices     {sum(findings.rejected.values())}"
        + (f" ({_pairs(findings.rejected)})" if findings.rejected else ""),
        f"  callback log         {_pairs(findings.log_outcomes)}",
        *_reconciliation_lines(reconciled),
        f"  DISCREPANCIES        {len(findings.discrepancies)}",
    ]
    lines += [f"    - {d}" for d in findings.discrepancies[:50]]
    if len(findings.discrepancies) > 50:
        lines.append(f"    … and {len(findings.discrepancies) - 50} more")
    out.write("\n".join(lines) + "\n")
