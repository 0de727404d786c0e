"""A TCP proxy the outage tests put between the app and PostgreSQL or RabbitMQ.

The servers themselves are never touched (other suites and worktrees share them): the proxy
listens on an ephemeral loopback port, forwards to the real server, and on command refuses
new connections (its listening socket closed: the client sees ECONNREFUSED, as with a server
that is down) or drops the ones it carries (both ends closed: a server restart, a NAT that
forgot the flow). Plain threads, no event loop, so it runs beside any WSGI test server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit, urlunsplit

_POLL = 0.05


class TcpProxy:
    """Forward 127.0.0.1:<port> to `target`; `refuse()`, `drop()`, `restore()` on command."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections_made = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._listen()

    # Commands ---------------------------------------------------------------------------

    def refuse(self) -> None:
        """New connections are refused and the current ones dropped (the server is down)."""
        self._close_listener()
        self.drop()

    def drop(self) -> None:
        """Every connection the proxy carries is cut at once; new ones still go through."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        """Accept again, on the same port (the server is back)."""
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self._stop.set()
        self._close_listener()
        self.drop()

    # Workings ---------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(_POLL)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # stops listening now, wakes accept()
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set() and self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._listener is not listener:  # refused meanwhile
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
                self.connections_made += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._sockets -= {src, dst}


@contextmanager
def proxy_for(url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of the server `url` names (PostgreSQL or AMQP), and the same URL
    pointing at the proxy."""
    parts = urlsplit(url)
    default_port = 5672 if parts.scheme.startswith("amqp") else 5432
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@" if credentials else ""
    try:
        yield proxy, urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))
    finally:
        proxy.close()
