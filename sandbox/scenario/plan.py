"""The district's mix: which household pays how, decided up front from the seed.

Shares (of the N paying households; every kind at least once when N allows, so a small run
still exercises each path):
- channel: WeChat for about 60% (the mini-program; v2 or v3 is whatever WECHAT_PAY_VERSION the
  API runs — the sandbox speaks both), Alipay for the rest, mostly its mini-program, some phone
  browser (wap) and some agent QR codes (qr);
- pension: about 45% of households choose a tier for members who need one (mostly 300 yuan,
  some 500/1000/2000), the others pay medical only;
- faults, each on a few percent of households: `duplicate`, `copies:3`, `delay:1`, `probe`
  (a forged probe, then the genuine notice lands), `drop`, `forge_signature`, `amount_changed`,
  `wrong_appid`, `wrong_mch` (rejected; the money is real, so reconcile-open heals them),
  `query_5xx` with `drop` (the first reconcile-open fails on it and survives; the second heals);
- `family`: two members at once through two channels — one shows an Alipay QR code, the other
  then orders in WeChat (which closes the QR order: Alipay does not know an unscanned QR
  trade), and both pay → the QR payment is `paid_after_close` and refunded automatically.
Not in the mix, and why: late payers (the API's APP_TODAY is fixed per process, so a run has
one business date), `prepay_5xx` / `timeout` (global faults: they would hit every concurrent
order; the e2e tests cover them) and `out_of_order` (its payment notice waits for a refund notice
or SANDBOX_OUT_OF_ORDER_HOLD seconds; the e2e tests cover it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: (faults, share of households); "family" is its own path, not a sandbox fault.
FAULT_SHARES: tuple[tuple[tuple[str, ...], float], ...] = (
    (("duplicate",), 0.04),
    (("copies:3",), 0.04),
    (("delay:1",), 0.02),
    (("probe",), 0.02),
    (("drop",), 0.04),
    (("forge_signature",), 0.02),
    (("amount_changed",), 0.02),
    (("wrong_appid",), 0.02),
    (("wrong_mch",), 0.02),
    (("query_5xx", "drop"), 0.02),
    (("family",), 0.05),
)
TIERS = (300, 300, 300, 300, 500, 500, 1000, 2000)
WECHAT_SHARE = 0.6
TIER_SHARE = 0.45


@dataclass(frozen=True)
class Plan:
    """How one household pays."""

    channel: str  # wechat | alipay (for `family`: the first member's, always alipay QR)
    scene: str | None  # Alipay: miniprogram | wap | qr
    tier: int | None  # None: pay medical only
    faults: tuple[str, ...] = ()
    family: bool = False
    labels: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return "+".join(self.labels) if self.labels else "clean"


def district_plans(n: int, seed: int) -> list[Plan]:
    """`n` plans (enough for `n` paying households), shuffled by `seed`."""
    rng = random.Random(seed)
    special: list[tuple[str, ...]] = []
    for faults, share in FAULT_SHARES:
        special += [faults] * max(1, round(n * share))
    special = special[:n]
    specials = special + [()] * (n - len(special))
    rng.shuffle(specials)
    plans = []
    for faults in specials:
        tier = rng.choice(TIERS) if rng.random() < TIER_SHARE else None
        if faults == ("family",):
            plans.append(Plan("alipay", "qr", tier, (), True, ("family",)))
            continue
        if rng.random() < WECHAT_SHARE:
            channel, scene = "wechat", None
        else:
            channel = "alipay"
            scene = rng.choices(("miniprogram", "wap", "qr"), weights=(7, 2, 1))[0]
        plans.append(Plan(channel, scene, tier, faults, False, faults))
    return plans
