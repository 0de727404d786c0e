"""A small HTTP client for the control endpoints of a running sandbox."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import requests


def default_url() -> str:
    return (
        os.environ.get("SANDBOX_URL")
        or f"http://127.0.0.1:{os.environ.get('SANDBOX_PORT', '8100')}"
    )


def add_url_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox-url",
        default=default_url(),
        help="running sandbox (default $SANDBOX_URL or http://127.0.0.1:$SANDBOX_PORT)",
    )


class ControlError(RuntimeError):
    """The sandbox answered with an error (or could not be reached)."""


class ControlClient:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = requests.request(
                method, self.base_url + path, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ControlError(f"sandbox not reachable at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise ControlError(f"{response.status_code}: {response.text.strip()}")
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params).json()

    def post(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, json=payload or {}).json()

    def raw(self, path: str, **params: Any) -> requests.Response:
        return self._call("GET", path, params=params)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
