"""`python -m sandbox pay --household H --channel wechat|alipay [...]`: a resident's whole path
against a running API and sandbox (issue 4 item 5, like `stripe trigger`).

    login code → POST /api/v1/auth/{channel} → POST /api/v1/households/bind (a roster member's
    ID number and name) → pension tiers for members that need one → POST /api/v1/payments
    (Idempotency-Key) → POST /sandbox/control/pay (faults) → poll GET /api/v1/payments/{no}
    → summary with the sandbox's notification attempts.

The household is found in a roster file (`--roster`, the import format); without one the API's
`flask --app wsgi demo export-roster` is run with `make run`'s scale and seed, because the CLI
must not read the API's database. `pay --out-trade-no` (pay an existing order) is unchanged;
this is the same command's second mode, chosen by `--household`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.cli.client import ControlClient, ControlError, fail
from sandbox.faults import FaultError, parse_faults
from sandbox.scenario import jobs, journey
from sandbox.scenario.api_client import ApiError, default_api_url
from sandbox.scenario.roster import (
    Household,
    RosterError,
    export_demo_roster,
    find_household,
    read_roster,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The household mode's options (added to the `pay` parser)."""
    group = parser.add_argument_group("resident mode (--household)")
    group.add_argument(
        "--household",
        metavar="H",
        help="roster household: N (the N-th of the roster), VILLAGE/NO or TOWN/VILLAGE/NO",
    )
    group.add_argument("--api", default=default_api_url(), help="API base URL ($API_URL)")
    group.add_argument("--roster", help="roster CSV (default: export the demo district)")
    group.add_argument("--demo-scale", help="export scale (default $DEMO_SCALE or 0.005)")
    group.add_argument("--demo-seed", help="export seed (default 42, as `demo load`)")
    group.add_argument(
        "--insurances", default="medical,pension", help="comma-separated (default both)"
    )
    group.add_argument(
        "--tier",
        type=int,
        default=300,
        help="pension tier (yuan) for members who have none yet; 0 = choose none (default 300)",
    )
    group.add_argument("--scene", choices=("miniprogram", "wap", "qr"), help="Alipay only")
    group.add_argument("--member", type=int, default=0, help="which living member binds (0..)")
    group.add_argument(
        "--heal",
        action="store_true",
        help="when the notification cannot land (drop, forged…), run reconcile-open",
    )
    group.add_argument(
        "--flask", help="the API's flask command (default: python -m flask --app wsgi)"
    )
    group.add_argument("--timeout", type=float, default=30.0, help="s to wait for the outcome")
    group.add_argument("--json", action="store_true", help="print the summary as JSON")


@dataclass
class Outcome:
    """What one `pay --household` run saw, for the summary."""

    household: str
    household_id: int | None = None
    channel: str = ""
    bound_as: str = ""
    tiers: dict[int, int] = field(default_factory=dict)
    order: dict[str, Any] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    expected: str = ""
    healed: dict[str, int] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    refused: str | None = None  # the API's error code, when it refused a step

    @property
    def ok(self) -> bool:
        if self.expected.startswith("refused: "):
            return self.refused == self.expected.removeprefix("refused: ")
        return self.error is None and self.order.get("status") == self.expected


def run(args: argparse.Namespace) -> int:
    try:
        faults = [f for text in args.fault for f in text.split(",") if f]
        parse_faults(faults)
        outcome = _walk(args, faults)
    except (FaultError, RosterError, ControlError) as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps(_as_json(outcome), ensure_ascii=False, indent=2, default=str))
    else:
        _print(outcome)
    return 0 if outcome.ok else 1


def _walk(args: argparse.Namespace, faults: list[str]) -> Outcome:
    flask = jobs.parse_flask_command(args.flask)
    household = find_household(_roster(args, flask), args.household)
    control = ControlClient(args.sandbox_url)
    outcome = Outcome(household.key, channel=args.channel, faults=faults)
    insurances = sorted({i.strip() for i in args.insurances.split(",") if i.strip()})
    try:
        resident = journey.enter(args.api, household, channel=args.channel, member=args.member)
        outcome.household_id, outcome.bound_as = resident.household_id, resident.bound_as
        if args.tier and "pension" in insurances:
            outcome.tiers = journey.choose_tiers(resident, args.tier)
        prepay = [f for f in faults if journey.fault_name(f) in journey.PREPAY_FAULTS]
        order = journey.with_global_faults(
            control,
            prepay,
            lambda: journey.place_order(resident, insurances=insurances, scene=args.scene),
        )
        outcome.order = order
        no = order["out_trade_no"]
        journey.set_order_faults(control, no, faults)
        journey.pay_at_gateway(control, order, faults)
        outcome.expected = journey.expected_state(faults)
        if outcome.expected == "paid":
            outcome.order = journey.await_order(
                resident, no, journey.PAID_STATES, timeout=args.timeout
            )
        else:
            if "out_of_order" not in {journey.fault_name(f) for f in faults}:
                journey.await_first_answer(control, args.channel, no, timeout=args.timeout)
            outcome.order = resident.api.order(no)
            if args.heal:
                outcome.healed = jobs.reconcile_open(flask)
                outcome.expected = "paid"
                outcome.order = journey.await_order(
                    resident, no, journey.PAID_STATES, timeout=args.timeout
                )
        outcome.attempts = journey.sandbox_attempts(control, args.channel, no)
    except ApiError as exc:
        outcome.error = str(exc)
        outcome.refused = exc.code
        if outcome.order == {} and any(
            journey.fault_name(f) in journey.PREPAY_FAULTS for f in faults
        ):
            outcome.expected = "refused: upstream_error"  # what prepay_5xx / timeout mean
    except jobs.JobError as exc:
        outcome.error = str(exc)
    return outcome


def _roster(args: argparse.Namespace, flask: list[str]) -> list[Household]:
    """The `--roster` file, or a fresh export of the demo district (removed once read)."""
    if args.roster:
        return read_roster(args.roster)
    exported = export_demo_roster(flask, scale=args.demo_scale, seed=args.demo_seed)
    try:
        return read_roster(exported)
    finally:
        exported.unlink(missing_ok=True)


def _as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "household": outcome.household,
        "household_id": outcome.household_id,
        "channel": outcome.channel,
        "bound_as": outcome.bound_as,
        "tiers": outcome.tiers,
        "faults": outcome.faults,
        "expected": outcome.expected,
        "ok": outcome.ok,
        "error": outcome.error,
        "healed": outcome.healed,
        "order": outcome.order,
        "notifications": [_attempt_line(a) for a in outcome.attempts],
    }


def _attempt_line(entry: dict[str, Any]) -> str:
    if entry.get("event") == "dropped":
        return f"{entry.get('kind')} dropped"
    verdict = "accepted" if entry.get("accepted") else "refused"
    answer = entry.get("status") or entry.get("error") or "-"
    return f"{entry.get('kind')} #{entry.get('attempt')} {answer} {verdict}"


def _print(outcome: Outcome) -> None:
    order = outcome.order
    print(f"household      {outcome.household}  (API id {outcome.household_id})")
    if outcome.bound_as:
        print(f"resident       {outcome.channel} login, bound as {outcome.bound_as}")
    if outcome.tiers:
        tiers = sorted(set(outcome.tiers.values()))
        print(f"pension tiers  {len(outcome.tiers)} member(s) → {', '.join(map(str, tiers))} yuan")
    if order:
        print(
            f"order          {order['out_trade_no']}  {order.get('channel')}  "
            f"{journey.yuan(order['amount_fen'])} yuan"
        )
        for item in order.get("items", []):
            contribution = item.get("contribution") or {}
            print(
                f"  {item['name']:<8} {item['insurance']:<8} {journey.yuan(item['amount_fen']):>10}"
                f"  {contribution.get('status', '-')}"
            )
        for refund in order.get("refunds", []):
            print(
                f"  refund {refund['out_refund_no']} {journey.yuan(refund['amount_fen'])} "
                f"{refund['reason']} {refund['state']}"
            )
    if outcome.faults:
        print(f"faults         {', '.join(outcome.faults)}")
    if outcome.healed is not None:
        print(f"reconcile-open {json.dumps(outcome.healed, sort_keys=True)}")
    if order:
        print(f"final state    {order.get('status')}  (expected {outcome.expected})")
    if outcome.attempts:
        print(f"notifications  {len(outcome.attempts)}:")
        for entry in outcome.attempts:
            print(f"  {_attempt_line(entry)}")
    if outcome.error:
        print(f"error          {outcome.error}")
    if outcome.expected.startswith("refused: "):
        print(f"expected       {outcome.expected} ({'as expected' if outcome.ok else 'NOT met'})")
    if outcome.order.get("status") in journey.OPEN_STATES and outcome.healed is None:
        print("hint           flask --app wsgi payments reconcile-open --older-than-minutes 0")
