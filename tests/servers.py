"""Servers the test suites run in-process: the local sandbox and small WSGI receivers.

The channel-adapter tests and the sandbox's own tests need the same sandbox settings and the
same way of serving a notification receiver; one place keeps them from drifting apart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from sandbox.server import SandboxServer
from sandbox.settings import SandboxSettings

# Notification retry schedules compressed so a whole 24 h schedule fits in well under a second.
FAST = 0.00002


@contextmanager
def running_sandbox() -> Iterator[SandboxServer]:
    """The sandbox on an ephemeral port: fast retries, 1 s refunds, 2 s for the merchant's reply."""
    settings = SandboxSettings.from_env(
        {}, SANDBOX_TIME_SCALE=FAST, SANDBOX_REFUND_SECONDS=1.0, SANDBOX_NOTIFY_TIMEOUT=2.0
    )
    server = SandboxServer(settings, port=0).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serving(handler: Callable[..., Any]) -> Iterator[str]:
    """Serve the WSGI `handler` threaded on an ephemeral loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, handler, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
