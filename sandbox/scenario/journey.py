"""One resident's path: login code → login → bind → pension tiers → order → pay → outcome.

Each step is a small function so `pay --household` walks them in order and the district
scenario recombines them (two family members, two channels, one household). The gateway side
of "pay" is the sandbox's control API (`POST /sandbox/control/pay`), the same event as the
payer page's 确认支付; faults ride on it (sandbox/faults.py).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from sandbox.cli.client import ControlClient, ControlError
from sandbox.scenario.api_client import ApiClient, ApiError
from sandbox.scenario.roster import Household, Member

YEAR = 2020
#: Faults the API must meet before the order exists: set globally around order creation.
PREPAY_FAULTS = frozenset({"prepay_5xx", "timeout"})
#: Faults of the order's later gateway calls: set on the order once it exists.
ORDER_FAULTS = frozenset({"query_5xx"})
#: Notification faults after which no genuine notice is applied (until healed or released).
UNAPPLIED_FAULTS = frozenset(
    {"drop", "forge_signature", "amount_changed", "wrong_appid", "wrong_mch", "out_of_order"}
)
#: API order states in which the money has been taken (api/payments/states.py PAID_STATES).
PAID_STATES = frozenset({"paid", "duplicate", "paid_after_close", "partially_refunded", "refunded"})
OPEN_STATES = frozenset({"created", "open"})


def fault_name(fault: str) -> str:
    return fault.partition(":")[0]


def yuan(fen: int) -> str:
    """Fen as yuan for people (`26000` → `260.00`); integer arithmetic, never a float."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def resident_user(household: Household, who: str = "a") -> str:
    """The sandbox login user of one family member: derived from the household's roster key,
    so the same household logs in as the same resident (same openid / Alipay user id) on
    every run, and `who` tells family members apart."""
    digest = hashlib.sha256(household.key.encode("utf-8")).hexdigest()[:16]
    return f"hh{digest}{who}"


def login_code(user: str) -> str:
    """A fresh code for `user`: the sandbox accepts `<user>.<nonce>`, each exact code once."""
    return f"{user}.{uuid.uuid4().hex[:12]}"


@dataclass
class Resident:
    """A logged-in resident bound to one household."""

    api: ApiClient
    channel: str
    user: str
    household_id: int
    bound_as: str  # the masked name the API shows for the binding member
    members: list[dict[str, Any]] = field(default_factory=list)


def enter(
    api_url: str, household: Household, *, channel: str, who: str = "a", member: int = 0
) -> Resident:
    """Log in through the channel's mini-program login and bind with a living member."""
    living = household.living()
    if not living:
        raise ApiError(0, "no_living_member", f"{household.key}: nobody alive to bind with")
    person: Member = living[member % len(living)]
    api = ApiClient(api_url)
    user = resident_user(household, who)
    api.login(channel, login_code(user))
    bound = api.bind(person.id_number, person.name)
    me = next((m for m in bound["members"] if m.get("is_self")), {"name": "?"})
    return Resident(api, channel, user, int(bound["id"]), str(me["name"]), bound["members"])


def choose_tiers(resident: Resident, tier: int, *, year: int = YEAR) -> dict[int, int]:
    """Choose `tier` for every member whose pension waits for a tier (`tier_required`).

    A tier the member may not take (e.g. 100 outside the special groups) is a 422: that
    member is left without a tier and so without a pension item. Returns person → tier.
    """
    chosen: dict[int, int] = {}
    premiums = resident.api.premiums(resident.household_id, year)
    for member in premiums["members"]:
        if member["pension"].get("status") != "tier_required":
            continue
        try:
            resident.api.choose_tier(resident.household_id, member["person_id"], year, tier)
        except ApiError as exc:
            if exc.status != 422:
                raise
            continue
        chosen[int(member["person_id"])] = tier
    return chosen


def with_global_faults(control: ControlClient, faults: list[str], work: Callable[[], Any]) -> Any:
    """Run `work` with faults in force for every order (the out_trade_no is not known before
    the API creates the order), and clear them afterwards whatever happens."""
    if not faults:
        return work()
    control.post("/sandbox/control/faults", {"faults": faults})
    try:
        return work()
    finally:
        control.post("/sandbox/control/faults", {"clear": True})


def place_order(
    resident: Resident,
    *,
    insurances: list[str],
    scene: str | None = None,
    year: int = YEAR,
) -> dict[str, Any]:
    return resident.api.create_order(
        household_id=resident.household_id,
        year=year,
        channel=resident.channel,
        insurances=insurances,
        scene=scene,
    )


def set_order_faults(control: ControlClient, out_trade_no: str, faults: Iterable[str]) -> None:
    wanted = [f for f in faults if fault_name(f) in ORDER_FAULTS]
    if wanted:
        control.post("/sandbox/control/faults", {"faults": wanted, "out_trade_no": out_trade_no})


def pay_at_gateway(
    control: ControlClient, order: dict[str, Any], faults: Iterable[str]
) -> dict[str, Any]:
    """The resident confirms payment in WeChat / Alipay (notification faults applied).

    An Alipay phone-browser (wap) order exists at the gateway only once the browser opened
    its `pay_url` (the SDK just signs a URL, PROTOCOLS.md §5): open it first, as the phone would.
    """
    pay_url = (order.get("pay_params") or {}).get("pay_url")
    if pay_url:
        try:
            requests.get(pay_url, timeout=30, allow_redirects=True).raise_for_status()
        except requests.RequestException as exc:
            raise ControlError(f"opening the Alipay pay_url failed: {exc}") from exc
    notify = [f for f in faults if fault_name(f) not in PREPAY_FAULTS | ORDER_FAULTS]
    result: dict[str, Any] = control.post(
        "/sandbox/control/pay",
        {"channel": order["channel"], "out_trade_no": order["out_trade_no"], "faults": notify},
    )
    return result


def expected_state(faults: Iterable[str]) -> str:
    """What the API should show once the sandbox has notified: `paid`, or still `open` when
    no genuine notice can be applied (dropped, forged, tampered or held back)."""
    return "open" if {fault_name(f) for f in faults} & UNAPPLIED_FAULTS else "paid"


def sandbox_attempts(
    control: ControlClient, channel: str, out_trade_no: str
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = control.get(
        f"/sandbox/{channel}/notifications", out_trade_no=out_trade_no
    )
    return entries


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy (its value) or the timeout passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def await_order(
    resident: Resident, out_trade_no: str, states: Iterable[str], *, timeout: float
) -> dict[str, Any]:
    """Poll `GET /api/v1/payments/{no}` until its status is one of `states` (or time out;
    then the last answer is returned as it is)."""
    wanted = set(states)
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        last = resident.api.order(out_trade_no)
        return last["status"] in wanted

    wait_for(check, timeout=timeout, interval=0.1)
    return last


def await_first_answer(
    control: ControlClient, channel: str, out_trade_no: str, *, copies: int = 1, timeout: float
) -> list[dict[str, Any]]:
    """Wait until the sandbox's log shows `copies` answered payment attempts for the order
    (or its `dropped` entry): proof that the API has seen — and judged — the notification."""

    def answered() -> list[dict[str, Any]] | None:
        entries = sandbox_attempts(control, channel, out_trade_no)
        done = [
            e
            for e in entries
            if e.get("kind") == "payment"
            and (e.get("event") == "dropped" or e.get("status") is not None or e.get("error"))
        ]
        if any(e.get("event") == "dropped" for e in done) or len(done) >= copies:
            return entries
        return None

    return wait_for(answered, timeout=timeout, interval=0.1) or sandbox_attempts(
        control, channel, out_trade_no
    )
