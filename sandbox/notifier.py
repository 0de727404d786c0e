"""Delivering notifications the way the gateways do: signed POSTs to the merchant's notify
URL, retried on the vendor's schedule until the merchant answers with the exact success reply.

Schedules (PROTOCOLS.md §0.9):
- WeChat v2 and v3: 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h after the first
  attempt, 16 attempts in 24h4m (§1.5, §2.4);
- Alipay: 4m,10m,10m,1h,2h,6h,15h, 8 attempts in about 25 h (§5.5).
Intervals are multiplied by SANDBOX_TIME_SCALE so a test can watch a whole schedule.

Every attempt is rebuilt (fresh timestamp, nonce and signature; the same event id or
notify_id) and logged with what was sent and what came back. Faults (`sandbox.faults`) are
turned into deliveries by `dispatch()`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import requests

from sandbox.clock import Clock
from sandbox.faults import FaultSet
from sandbox.store import Store

log = logging.getLogger("sandbox.notifier")

WECHAT_RETRY_SCHEDULE: tuple[float, ...] = (
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
)  # fmt: skip
ALIPAY_RETRY_SCHEDULE: tuple[float, ...] = (240, 600, 600, 3600, 7200, 21600, 54000)

_delivery_ids = itertools.count(1)


@dataclass(frozen=True)
class Tamper:
    """How a notification is falsified by a fault (all off: a true notification)."""

    forge_signature: bool = False
    amount_delta_fen: int = 0
    wrong_appid: bool = False
    wrong_mch: bool = False
    probe: bool = False  # the v3 "signature probe" shape (§2.3)


@dataclass(frozen=True)
class Attempt:
    """One HTTP POST as built for one attempt."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Delivery:
    """One notification and its retry policy. `build` is called again for every attempt."""

    channel: str
    api: str
    kind: str  # payment | refund | probe
    out_trade_no: str
    url: str
    event_id: str
    build: Callable[[], Attempt]
    accepts: Callable[[int, bytes], bool]
    schedule: Sequence[float]
    initial_delay: float = 0.0  # real seconds
    max_attempts: int | None = None
    faults: tuple[str, ...] = ()
    delivery_id: int = field(default_factory=lambda: next(_delivery_ids))

    def copy(self) -> Delivery:
        """The same notification as a separate delivery (its own retry chain)."""
        return replace(self, delivery_id=next(_delivery_ids))


class Notifier:
    """Runs deliveries on daemon threads.

    Each delivery belongs to a *generation*: `cancel_all()` (the control `reset`) ends every
    delivery, hold and pending refund of the old generation at once, so nothing from before a
    reset reaches a merchant afterwards; `shutdown()` does the same for good.
    """

    def __init__(self, store: Store, clock: Clock, *, timeout: float = 5.0) -> None:
        self.store = store
        self.clock = clock
        self.timeout = timeout
        self.stop = threading.Event()  # set once, at shutdown
        self._generation = threading.Event()  # set when this generation is cancelled
        self._active = 0
        self._idle = threading.Condition()
        self._held: dict[tuple[str, str], list[Delivery]] = {}
        self._held_lock = threading.Lock()

    # Running ----------------------------------------------------------------------------------

    def submit(
        self,
        delivery: Delivery,
        *,
        then: Sequence[Delivery] = (),
        barrier: threading.Barrier | None = None,
        after_first: Callable[[], None] | None = None,
    ) -> None:
        """Start `delivery`; `then` (and `after_first`) start once its first attempt has been
        answered, which is how `duplicate`, `probe` and `out_of_order` keep their order."""
        with self._idle:
            self._active += 1
        thread = threading.Thread(
            target=self._run,
            args=(delivery, tuple(then), barrier, after_first, self.generation()),
            name=f"notify-{delivery.channel}-{delivery.delivery_id}",
            daemon=True,
        )
        thread.start()

    def generation(self) -> threading.Event:
        """The current generation's cancel event (wait on it instead of sleeping)."""
        with self._held_lock:
            return self._generation

    def cancel_all(self) -> None:
        """End every running delivery, hold and scheduled refund (the control `reset`)."""
        with self._held_lock:
            old, self._generation = self._generation, threading.Event()
            self._held.clear()
        old.set()

    def shutdown(self) -> None:
        self.stop.set()
        self.generation().set()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no delivery is running (held ones do not count); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def _run(
        self,
        delivery: Delivery,
        then: tuple[Delivery, ...],
        barrier: threading.Barrier | None,
        after_first: Callable[[], None] | None,
        cancel: threading.Event,
    ) -> None:
        try:
            self._deliver(delivery, then, barrier, after_first, cancel)
        except Exception:  # a bug here must not kill the server; it is logged loudly
            log.exception("delivery %s failed", delivery.delivery_id)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _deliver(
        self,
        delivery: Delivery,
        then: tuple[Delivery, ...],
        barrier: threading.Barrier | None,
        after_first: Callable[[], None] | None,
        cancel: threading.Event,
    ) -> None:
        if self.clock.wait(delivery.initial_delay, cancel):
            return
        attempts = 1 + len(delivery.schedule)
        if delivery.max_attempts is not None:
            attempts = min(attempts, delivery.max_attempts)
        for number in range(1, attempts + 1):
            if number > 1 and self.clock.wait(
                self.clock.scaled(delivery.schedule[number - 2]), cancel
            ):
                return
            attempt = delivery.build()
            if barrier is not None and number == 1:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=5)
            accepted = self._post(delivery, number, attempt)
            if number == 1:
                for follower in then:
                    self.submit(follower)
                if after_first is not None:
                    after_first()
            if accepted or cancel.is_set():
                return

    def _post(self, delivery: Delivery, number: int, attempt: Attempt) -> bool:
        entry: dict[str, Any] = {
            "event": "attempt",
            "channel": delivery.channel,
            "api": delivery.api,
            "kind": delivery.kind,
            "out_trade_no": delivery.out_trade_no,
            "event_id": delivery.event_id,
            "delivery": delivery.delivery_id,
            "attempt": number,
            "time": self.clock.now().isoformat(),
            "url": delivery.url,
            "request_headers": dict(attempt.headers),
            "request_body": attempt.body.decode("utf-8", errors="replace"),
            "faults": list(delivery.faults),
            "status": None,
            "reply_body": None,
            "accepted": False,
            "error": None,
        }
        try:
            response = requests.post(
                delivery.url,
                data=attempt.body,
                headers=attempt.headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
        else:
            entry["status"] = response.status_code
            entry["reply_body"] = response.content[:4096].decode("utf-8", errors="replace")
            entry["accepted"] = bool(delivery.accepts(response.status_code, response.content))
        self.store.log_notification(entry)
        return bool(entry["accepted"])

    # Holding (out_of_order) -------------------------------------------------------------------

    def hold(self, key: tuple[str, str], delivery: Delivery, max_hold: float) -> None:
        """Keep a payment notice back until the order's refund notice went out (or max_hold)."""
        with self._held_lock:
            self._held.setdefault(key, []).append(delivery)

        cancel = self.generation()

        def release_later() -> None:
            if not cancel.wait(max_hold):
                for late in self.take_held(key):
                    self.submit(late)

        threading.Thread(target=release_later, name="notify-hold", daemon=True).start()

    def take_held(self, key: tuple[str, str]) -> list[Delivery]:
        with self._held_lock:
            return self._held.pop(key, [])


def dispatch(
    notifier: Notifier,
    faults: FaultSet,
    make: Callable[[Tamper], Delivery | None],
    *,
    out_of_order_hold: float = 60.0,
) -> None:
    """Turn one notification event into deliveries according to the faults in force."""
    tamper = Tamper(
        forge_signature=faults.has("forge_signature"),
        amount_delta_fen=1 if faults.has("amount_changed") else 0,
        wrong_appid=faults.has("wrong_appid"),
        wrong_mch=faults.has("wrong_mch"),
    )
    delivery = make(tamper)
    if delivery is None:
        return
    delivery = replace(
        delivery,
        faults=tuple(faults.names()),
        initial_delay=delivery.initial_delay + (faults.argument("delay", 0.0) or 0.0),
    )
    key = (delivery.channel, delivery.out_trade_no)
    if faults.has("drop") or (delivery.kind == "refund" and faults.has("drop_refund")):
        notifier.store.log_notification(
            {
                "event": "dropped",
                "channel": delivery.channel,
                "api": delivery.api,
                "kind": delivery.kind,
                "out_trade_no": delivery.out_trade_no,
                "event_id": delivery.event_id,
                "time": notifier.clock.now().isoformat(),
                "url": delivery.url,
                "faults": list(delivery.faults),
                "accepted": False,
            }
        )
        return
    probe: Delivery | None = None
    if faults.has("probe"):
        forged = make(Tamper(forge_signature=True, probe=True))
        if forged is not None:
            probe = replace(forged, kind="probe", max_attempts=1, faults=("probe",))
    if delivery.kind == "payment" and faults.has("out_of_order"):
        if probe is not None:
            notifier.submit(probe)
        notifier.hold(key, delivery, out_of_order_hold)
        return
    followers: list[Delivery] = []
    if delivery.kind == "refund":
        followers += notifier.take_held(key)  # the payment notice comes after the refund's
    if faults.has("duplicate"):
        followers.insert(0, delivery.copy())
    copies = int(faults.argument("copies", 1) or 1)

    def start() -> None:
        if copies > 1:
            barrier = threading.Barrier(copies)
            notifier.submit(delivery, then=followers, barrier=barrier)
            for _ in range(copies - 1):
                notifier.submit(delivery.copy(), barrier=barrier)
        else:
            notifier.submit(delivery, then=followers)

    if probe is not None:
        notifier.submit(probe, after_first=start)  # the probe first, the real one after
    else:
        start()
