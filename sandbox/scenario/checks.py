"""Discrepancies: does what the API shows agree with what the scenario paid and with what
the gateway (the sandbox) saw? Every finding here makes `scenario district` exit non-zero.

Per household: each premium item paid by the scenario's orders is `paid` in
`GET /households/{id}/premiums`, no (person, insurance) has two paid contributions across the
household's orders, and medical is not left unpaid (it is household-wide). Per order: the final
status is the planned one; the sandbox's order is paid exactly when the API's is, for the same
amount, and the refunds that succeeded at the sandbox add up to the API's `refunded_fen`; in
the finance callback log the order has exactly one applied payment notification — none when it
had to be healed — and the rejections its faults call for, with their reasons.

Rejected notifications are matched to orders by their raw body: a notice refused at its
signature is logged before anything is parsed out of it (no out_trade_no), but its body is
byte for byte the one the sandbox logged as sent.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sandbox.cli.client import ControlClient, ControlError
from sandbox.scenario import journey
from sandbox.scenario.api_client import ApiClient, ApiError
from sandbox.scenario.district import DistrictRun, HouseholdRun, OrderRun

#: The callback log reason each notification fault must leave (api/payments/channels).
REJECTION_REASONS = {
    "forge_signature": "bad_signature",
    "probe": "bad_signature",
    "amount_changed": "amount_mismatch",
    "wrong_appid": "wrong_app_id",
    "wrong_mch": "wrong_merchant",
}


@dataclass
class Findings:
    discrepancies: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)  # "wechat v2", "alipay qr", …
    faults: Counter[str] = field(default_factory=Counter)
    log_outcomes: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    paid_households: int = 0
    duplicates_refunded: int = 0
    healed: int = 0
    paid_fen: int = 0
    refunded_fen: int = 0
    contributions: int = 0
    tiers: Counter[int] = field(default_factory=Counter)

    def add(self, where: str, what: str) -> None:
        self.discrepancies.append(f"{where}: {what}")


def check_district(
    run: DistrictRun, *, sandbox_url: str, staff: ApiClient | None, since: date
) -> Findings:
    findings = Findings()
    control = ControlClient(sandbox_url)
    ours = {o.out_trade_no for o in run.orders}
    sent = _sent_bodies(control, ours)
    log = _callback_log(staff, since, sent, ours, findings)
    for problem in run.problems:
        findings.add("scenario", problem)
    for household in run.households:
        _check_household(household, control, log, findings)
    return findings


def _sent_bodies(control: ControlClient, ours: set[str]) -> dict[str, str]:
    """Request body → out_trade_no of every notification the sandbox sent for our orders."""
    bodies: dict[str, str] = {}
    for channel in ("wechat", "alipay"):
        for entry in control.get(f"/sandbox/{channel}/notifications"):
            body = (entry.get("request_body") or "").strip()
            if body and entry.get("out_trade_no"):
                bodies[body] = str(entry["out_trade_no"])
    return {b: no for b, no in bodies.items() if no in ours}


def _callback_log(
    staff: ApiClient | None, since: date, sent: dict[str, str], ours: set[str], findings: Findings
) -> dict[str, list[dict[str, Any]]] | None:
    if staff is None:
        findings.add("callback log", "not read (no finance login): notifications unchecked")
        return None
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    try:
        for row in staff.notifications(date_from=since.isoformat()):
            no = row.get("out_trade_no") or sent.get((row.get("body") or "").strip())
            if no in ours:
                by_order[no].append(row)
    except ApiError as exc:
        findings.add("callback log", f"not readable: {exc}")
        return None
    return by_order


def _check_household(
    household: HouseholdRun,
    control: ControlClient,
    log: dict[str, list[dict[str, Any]]] | None,
    findings: Findings,
) -> None:
    where = household.household.key
    if household.error:
        findings.add(where, f"did not complete: {household.error}")
    if not household.orders or household.resident is None:
        return
    findings.faults[household.plan.label] += 1
    findings.tiers.update(household.tiers.values())
    paid_items: Counter[tuple[int, str]] = Counter()
    for order in household.orders:
        try:
            view = order.reader.api.order(order.out_trade_no)
        except ApiError as exc:
            findings.add(where, f"order {order.out_trade_no} unreadable: {exc}")
            continue
        _check_order(where, order, view, control, log, findings)
        if order is household.orders[0] and view["status"] in journey.PAID_STATES:
            findings.paid_households += 1
        for item in view["items"]:
            if (item.get("contribution") or {}).get("status") == "paid":
                paid_items[(item["person_id"], item["insurance"])] += 1
    findings.contributions += sum(paid_items.values())
    for key, count in paid_items.items():
        if count > 1:
            findings.add(where, f"person {key[0]} {key[1]} paid {count} times")
    premiums = household.resident.api.premiums(household.resident.household_id, journey.YEAR)
    for member in premiums["members"]:
        for insurance in ("medical", "pension"):
            status = member[insurance].get("status")
            key = (member["person_id"], insurance)
            if key in paid_items and status != "paid":
                findings.add(where, f"person {key[0]} {insurance} paid by order but shows {status}")
            if status == "unpaid" and (
                insurance == "medical" or member["person_id"] in household.tiers
            ):
                findings.add(where, f"person {key[0]} {insurance} still unpaid")


def _check_order(
    where: str,
    order: OrderRun,
    view: dict[str, Any],
    control: ControlClient,
    log: dict[str, list[dict[str, Any]]] | None,
    findings: Findings,
) -> None:
    no, status = order.out_trade_no, view["status"]
    findings.statuses[status] += 1
    if status != order.expected:
        findings.add(where, f"order {no} is {status}, expected {order.expected}")
    paid = status in journey.PAID_STATES
    if paid:
        findings.paid_fen += view["amount_fen"]
    findings.refunded_fen += view["refunded_fen"]
    if order.expected == "refunded" and status == "refunded":
        if view["refunded_fen"] == view["amount_fen"]:
            findings.duplicates_refunded += 1
        else:
            findings.add(
                where, f"order {no} refunded {view['refunded_fen']} of {view['amount_fen']}"
            )
    try:
        gateway: dict[str, Any] | None = control.get(
            f"/sandbox/control/orders/{order.channel}/{no}"
        )
    except ControlError:
        gateway = None
    if gateway is None:
        if paid:
            findings.add(where, f"order {no} paid at the API, unknown to the sandbox")
        return
    findings.channels[_channel_label(order, gateway)] += paid
    if (gateway["state"] == "PAID") != paid:
        findings.add(where, f"order {no}: sandbox {gateway['state']}, API {status}")
    if gateway["amount_fen"] != view["amount_fen"]:
        findings.add(
            where, f"order {no}: sandbox {gateway['amount_fen']} fen, API {view['amount_fen']}"
        )
    refunded = sum(r["amount_fen"] for r in gateway["refunds"] if r["status"] == "SUCCESS")
    if refunded != view["refunded_fen"]:
        findings.add(
            where, f"order {no}: sandbox refunded {refunded} fen, API {view['refunded_fen']}"
        )
    if log is not None:
        _check_log(where, order, status, log.get(no, []), findings)


def _channel_label(order: OrderRun, gateway: dict[str, Any]) -> str:
    if order.channel == "wechat":
        return f"wechat {gateway.get('api') or ''}".strip()
    return f"alipay {gateway.get('trade_type') or ''}".strip()


def _check_log(
    where: str, order: OrderRun, status: str, rows: list[dict[str, Any]], findings: Findings
) -> None:
    payments = [r for r in rows if r.get("kind") in (None, "payment")]
    for row in rows:
        findings.log_outcomes[str(row.get("outcome"))] += 1
        if row.get("outcome") == "rejected":
            findings.rejected[str(row.get("reason"))] += 1
    applied = [r for r in payments if r.get("outcome") == "applied"]
    if order.healed:
        if status in journey.PAID_STATES and not applied:
            findings.healed += 1
        if applied:
            findings.add(
                where, f"order {order.out_trade_no}: a notice was applied despite the fault"
            )
    elif len(applied) != 1:
        findings.add(where, f"order {order.out_trade_no}: {len(applied)} applied payment notices")
    reasons = {str(r.get("reason")) for r in payments if r.get("outcome") == "rejected"}
    for fault in order.faults:
        wanted = REJECTION_REASONS.get(journey.fault_name(fault))
        if wanted and wanted not in reasons:
            findings.add(where, f"order {order.out_trade_no}: no {wanted} rejection for {fault}")
