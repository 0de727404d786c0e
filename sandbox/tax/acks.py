"""Acknowledgements back to the API: `POST /api/v1/tax/acknowledgements` as a `tax` staff member.

HTTP rather than a reply queue: the tax bureau is another organisation, and an authenticated
call into the API is the boundary it already has for everything else (the staff token names who
acknowledged, the API validates and audits it); it works the same over RabbitMQ and the
embedded queue, and needs no second consumer on the API side.
"""

from __future__ import annotations

from typing import Any

import requests


class AckRefused(Exception):
    """The API answered with an error (not a network failure)."""


class HttpAckSink:
    def __init__(
        self, api_base: str, username: str, password: str, *, timeout: float = 10.0
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._token: str | None = None
        self._http = requests.Session()

    def _login(self) -> str:
        response = self._http.post(
            f"{self.api_base}/api/v1/auth/staff",
            json={"username": self.username, "password": self.password},
            timeout=self.timeout,
        )
        if response.status_code != 200:
            raise AckRefused(f"staff login failed: HTTP {response.status_code}")
        token: str = response.json()["token"]
        return token

    def send(self, acks: list[dict[str, Any]]) -> None:
        for _ in range(2):
            if self._token is None:
                self._token = self._login()
            response = self._http.post(
                f"{self.api_base}/api/v1/tax/acknowledgements",
                json={"acknowledgements": acks},
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self.timeout,
            )
            if response.status_code == 401:  # token expired: log in again once
                self._token = None
                continue
            if response.status_code != 200:
                raise AckRefused(f"acknowledgements refused: HTTP {response.status_code}")
            return
        raise AckRefused("acknowledgements refused: HTTP 401 after a fresh login")
