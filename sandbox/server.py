"""The sandbox HTTP server: one Flask app imitating every vendor endpoint.

`create_sandbox_app(settings)` builds the app (nothing at import time); `SandboxServer` runs
it threaded with werkzeug's `make_server`, on a fixed port (`python -m sandbox serve`) or an
ephemeral one (tests, in-process). Threaded because notifications, the `timeout` fault and
concurrent merchants all need several requests in flight at once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, jsonify
from werkzeug.serving import BaseWSGIServer, make_server

from sandbox import alipay, control, payer_page, wechat_login, wechat_v2, wechat_v3
from sandbox.context import Sandbox
from sandbox.settings import SandboxSettings

log = logging.getLogger("sandbox")


def create_sandbox_app(settings: SandboxSettings | None = None) -> Flask:
    """The sandbox app; its state is `app.extensions["sandbox"]` (a `Sandbox`)."""
    settings = settings or SandboxSettings.from_env()
    app = Flask("sandbox")
    app.config["JSON_AS_ASCII"] = False
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["sandbox"] = Sandbox.build(settings)
    for blueprint in (
        wechat_login.bp,
        wechat_v2.bp,
        wechat_v3.bp,
        alipay.bp,
        payer_page.bp,
        control.bp,
    ):
        app.register_blueprint(blueprint)

    @app.get("/")
    def index() -> Any:
        """A map of the sandbox for a developer who opens it in a browser."""
        s = app.extensions["sandbox"].settings
        return jsonify(
            {
                "sandbox": "local WeChat Pay (v2, v3), mini-program login and Alipay",
                "base_url": s.base_url,
                "wechat_v2": f"{s.base_url}/  (pay/unifiedorder, pay/orderquery, ...)",
                "wechat_v3": f"{s.base_url}/v3/...",
                "wechat_login": f"{s.base_url}/sns/jscode2session",
                "alipay_gateway": f"{s.base_url}/gateway.do",
                "payer_page": f"{s.base_url}/sandbox/pay/<channel>/<out_trade_no>",
                "control": f"{s.base_url}/sandbox/control/...",
            }
        )

    return app


class SandboxServer:
    """A running sandbox: `start()` binds (port 0 = ephemeral) and serves on a thread."""

    def __init__(self, settings: SandboxSettings | None = None, *, port: int | None = None):
        self.settings = settings or SandboxSettings.from_env()
        self.port = self.settings.SANDBOX_PORT if port is None else port
        self.app = create_sandbox_app(self.settings)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def sandbox(self) -> Sandbox:
        sandbox = self.app.extensions["sandbox"]
        assert isinstance(sandbox, Sandbox)
        return sandbox

    @property
    def base_url(self) -> str:
        return self.sandbox.settings.base_url

    def bind(self) -> SandboxServer:
        server = make_server(self.settings.SANDBOX_HOST, self.port, self.app, threaded=True)
        server.daemon_threads = True  # type: ignore[attr-defined]  # threaded=True
        self._server = server
        self.port = server.server_port
        # Now that the port is known, the URLs the sandbox hands out (pay_url, bill URLs) can
        # be built; an explicit SANDBOX_PUBLIC_URL is kept as it is.
        self.sandbox.settings = self.sandbox.settings.with_(SANDBOX_PORT=self.port)
        return self

    def start(self) -> SandboxServer:
        """Serve on a daemon thread (tests); returns at once."""
        if self._server is None:
            self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sandbox-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted (the CLI)."""
        if self._server is None:
            self.bind()
        assert self._server is not None
        try:
            self._server.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and end every pending delivery and hanging reply."""
        self.sandbox.notifier.shutdown()
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(timeout=5)
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
