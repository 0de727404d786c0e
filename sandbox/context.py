"""The one object every sandbox module works with: settings, clock, store and notifier.

`create_sandbox_app` puts it into `app.extensions["sandbox"]`; request handlers reach it with
`current()`. Nothing here is global, so tests can run several sandboxes side by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app

from sandbox.clock import Clock
from sandbox.faults import Fault, FaultSet
from sandbox.notifier import Notifier
from sandbox.settings import SandboxSettings
from sandbox.store import Store


@dataclass
class Sandbox:
    settings: SandboxSettings
    clock: Clock
    store: Store
    notifier: Notifier

    @classmethod
    def build(cls, settings: SandboxSettings) -> Sandbox:
        clock = Clock(time_scale=settings.SANDBOX_TIME_SCALE, app_today=settings.APP_TODAY)
        store = Store()
        notifier = Notifier(store, clock, timeout=settings.SANDBOX_NOTIFY_TIMEOUT)
        return cls(settings=settings, clock=clock, store=store, notifier=notifier)

    def faults(self, out_trade_no: str | None, extra: Iterable[Fault] = ()) -> FaultSet:
        """Global faults, then the order's, then the call's own (most specific wins)."""
        global_faults, own = self.store.faults_for(out_trade_no)
        return FaultSet.of(global_faults, own, extra)

    def hang(self, seconds: float) -> None:
        """The `timeout` fault: hold the reply (real seconds), cut short by shutdown."""
        self.notifier.generation().wait(seconds)

    def reset(self) -> None:
        self.notifier.cancel_all()
        self.store.reset()


def current() -> Sandbox:
    """The sandbox of the running Flask app."""
    sandbox = current_app.extensions["sandbox"]
    assert isinstance(sandbox, Sandbox)
    return sandbox
