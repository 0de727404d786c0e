"""`scenario district`: N households pay at once, then the API's jobs heal and refund.

Three phases, so that what is checked at the end is a settled state:
1. payment — `concurrency` workers take households from the shuffled roster, each with its
   `Plan` (sandbox/scenario/plan.py); a worker waits until the API judged its notification
   (paid, or the rejection answered) so nothing is in flight when phase 2 starts. A household
   that owes nothing (everyone government-paid, in employee insurance, or already paid by an
   earlier run) gives its plan back to the next household, so N households really pay;
2. healing and refunds — `payments reconcile-open` (twice when `query_5xx` made the first
   fail on purpose) and `payments process-refunds` until every automatic refund succeeded;
3. checks (`checks.py`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sandbox.cli.client import ControlClient, ControlError
from sandbox.scenario import jobs, journey
from sandbox.scenario.api_client import ApiError
from sandbox.scenario.plan import Plan
from sandbox.scenario.roster import Household


@dataclass(frozen=True)
class Settings:
    api_url: str
    sandbox_url: str
    flask_command: Sequence[str]
    concurrency: int = 4
    timeout: float = 60.0  # per wait (a notification to be judged, a refund to succeed)


@dataclass
class OrderRun:
    """One order the scenario placed, what should become of it, and who can read it."""

    out_trade_no: str
    channel: str
    reader: journey.Resident
    expected: str  # final API status: paid | refunded
    healed: bool = False  # expected to be paid by reconcile-open, not by a notification
    faults: tuple[str, ...] = ()


@dataclass
class HouseholdRun:
    household: Household
    plan: Plan
    orders: list[OrderRun] = field(default_factory=list)
    tiers: dict[int, int] = field(default_factory=dict)
    skipped: str | None = None  # nothing_owed | already_paid | no_living_member
    error: str | None = None
    resident: journey.Resident | None = None


@dataclass
class DistrictRun:
    households: list[HouseholdRun] = field(default_factory=list)
    skipped: list[HouseholdRun] = field(default_factory=list)
    reconcile: list[dict[str, int]] = field(default_factory=list)
    refund_rounds: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # could not run as planned
    started_at: float = field(default_factory=time.time)
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def orders(self) -> list[OrderRun]:
        return [o for h in self.households for o in h.orders]


SKIP_CODES = frozenset({"nothing_owed", "already_paid"})


def pay_district(
    settings: Settings, households: Sequence[Household], plans: Sequence[Plan], *, seed: int
) -> DistrictRun:
    """Run all three phases' first two; the caller checks (`checks.check_district`)."""
    run = DistrictRun()
    queue = [h for h in households if h.living()]
    random.Random(seed).shuffle(queue)
    _pay_all(settings, queue, plans, run)
    _heal_and_refund(settings, run)
    return run


def _pay_all(
    settings: Settings, queue: list[Household], plans: Sequence[Plan], run: DistrictRun
) -> None:
    ready = threading.Condition()
    todo: deque[Plan] = deque(plans)
    pending: deque[Household] = deque(queue)
    in_flight = [0]
    started = time.monotonic()

    def take() -> tuple[Household, Plan] | None:
        with ready:
            # No plan left but households in flight: one may owe nothing and give its plan back.
            ready.wait_for(lambda: bool(todo) or not in_flight[0] or not pending)
            if not todo or not pending:
                return None
            in_flight[0] += 1
            return pending.popleft(), todo.popleft()

    def worker() -> None:
        control = ControlClient(settings.sandbox_url)
        while (job := take()) is not None:
            household, plan = job
            result = HouseholdRun(household, plan)
            try:
                _pay_household(settings, control, result)
            except (ApiError, ControlError) as exc:
                if isinstance(exc, ApiError) and exc.code in SKIP_CODES and not result.orders:
                    result.skipped = exc.code
                else:
                    result.error = str(exc)
            with ready:
                in_flight[0] -= 1
                if result.skipped:
                    todo.appendleft(plan)
                    run.skipped.append(result)
                else:
                    run.households.append(result)
                ready.notify_all()

    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(settings.concurrency)]:
            future.result()
    if todo:
        run.problems.append(
            f"the roster ran out: {len(todo)} planned household(s) found no one who owes"
        )
    run.phase_seconds["payment"] = time.monotonic() - started


def _pay_household(settings: Settings, control: ControlClient, result: HouseholdRun) -> None:
    if result.plan.family:
        _pay_family(settings, control, result)
        return
    plan, household = result.plan, result.household
    resident = journey.enter(settings.api_url, household, channel=plan.channel)
    result.resident = resident
    insurances = _insurances(resident, plan, result)
    order = journey.place_order(resident, insurances=insurances, scene=plan.scene)
    no = order["out_trade_no"]
    expected = journey.expected_state(plan.faults)
    result.orders.append(
        OrderRun(no, plan.channel, resident, "paid", expected != "paid", plan.faults)
    )
    journey.set_order_faults(control, no, plan.faults)
    journey.pay_at_gateway(control, order, plan.faults)
    copies = _copies(plan.faults)
    if expected == "paid":
        journey.await_order(resident, no, journey.PAID_STATES, timeout=settings.timeout)
    journey.await_first_answer(control, plan.channel, no, copies=copies, timeout=settings.timeout)


def _pay_family(settings: Settings, control: ControlClient, result: HouseholdRun) -> None:
    """Two members, two channels, one household: an Alipay QR code shown first, then a WeChat
    order (which supersedes it), and both paid at once."""
    household, plan = result.household, result.plan
    shower = journey.enter(settings.api_url, household, channel="alipay", who="b", member=1)
    payer = journey.enter(settings.api_url, household, channel="wechat", who="a", member=0)
    result.resident = payer
    insurances = _insurances(payer, plan, result)
    qr = journey.place_order(shower, insurances=insurances, scene="qr")
    wx = journey.place_order(payer, insurances=insurances)
    result.orders.append(OrderRun(wx["out_trade_no"], "wechat", payer, "paid"))
    result.orders.append(OrderRun(qr["out_trade_no"], "alipay", shower, "refunded"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        paid = [pool.submit(journey.pay_at_gateway, control, o, ()) for o in (wx, qr)]
        for future in paid:
            future.result()
    journey.await_order(payer, wx["out_trade_no"], journey.PAID_STATES, timeout=settings.timeout)
    journey.await_order(shower, qr["out_trade_no"], journey.PAID_STATES, timeout=settings.timeout)


def _insurances(resident: journey.Resident, plan: Plan, result: HouseholdRun) -> list[str]:
    if plan.tier is None:
        return ["medical"]
    result.tiers = journey.choose_tiers(resident, plan.tier)
    return ["medical", "pension"]


def _copies(faults: Sequence[str]) -> int:
    for fault in faults:
        name, _, arg = fault.partition(":")
        if name == "copies":
            return int(float(arg))
        if name == "duplicate":
            return 2
    return 1


def _heal_and_refund(settings: Settings, run: DistrictRun) -> None:
    started = time.monotonic()
    control = ControlClient(settings.sandbox_url)
    flask = settings.flask_command
    run.reconcile.append(jobs.reconcile_open(flask))
    faulty = [o for o in run.orders if "query_5xx" in o.faults]
    if faulty:
        # The gateway recovers: lift the order's query fault, and the next run heals it.
        for order in faulty:
            control.post(
                "/sandbox/control/faults", {"clear": True, "out_trade_no": order.out_trade_no}
            )
        run.reconcile.append(jobs.reconcile_open(flask))
    run.phase_seconds["healing"] = time.monotonic() - started

    started = time.monotonic()
    refunding = [o for o in run.orders if o.expected == "refunded"]
    deadline = time.monotonic() + settings.timeout
    while True:
        run.refund_rounds.append(jobs.process_refunds(flask))
        waiting = [o for o in refunding if _status(o) != "refunded"]
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    run.phase_seconds["refunds"] = time.monotonic() - started


def _status(order: OrderRun) -> str:
    return str(order.reader.api.order(order.out_trade_no)["status"])
