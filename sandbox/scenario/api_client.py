"""The API as a mini-program sees it: its HTTP contract (DESIGN.md "The mini-program
contract"), plus the finance callback log. Plain `requests`; one client per resident (a
`requests.Session` is not shared between threads)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import requests


def default_api_url() -> str:
    return os.environ.get("API_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"


class ApiError(RuntimeError):
    """The API answered an error (`{code, status, message}`) or could not be reached."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ApiClient:
    """One caller of the API: a resident (after `login`) or a staff member (`staff_login`)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.http.request(
                method,
                self.base_url + path,
                json=body,
                params=params,
                headers=sent,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ApiError(
                0, "unreachable", f"API not reachable at {self.base_url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            raise ApiError(
                response.status_code,
                str(problem.get("code") or response.reason),
                str(problem.get("message") or response.text[:200]),
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    # Residents -------------------------------------------------------------------------------

    def login(self, channel: str, code: str) -> None:
        """`POST /api/v1/auth/wechat {"code"}` or `/auth/alipay {"auth_code"}`."""
        field = "code" if channel == "wechat" else "auth_code"
        self.token = self._json("POST", f"/api/v1/auth/{channel}", body={field: code})["token"]

    def bind(self, id_number: str, name: str) -> dict[str, Any]:
        body = {"id_number": id_number, "name": name}
        result: dict[str, Any] = self._json("POST", "/api/v1/households/bind", body=body)
        return result

    def premiums(self, household_id: int, year: int) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "GET", f"/api/v1/households/{household_id}/premiums", params={"year": year}
        )
        return result

    def choose_tier(self, household_id: int, person_id: int, year: int, tier: int) -> None:
        self._call(
            "PUT",
            f"/api/v1/households/{household_id}/members/{person_id}/pension-tier",
            body={"year": year, "tier": tier},
        )

    def create_order(
        self,
        *,
        household_id: int,
        year: int,
        channel: str,
        insurances: list[str],
        scene: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """`POST /api/v1/payments`. A request lost in transit is sent again with the SAME
        Idempotency-Key, so the API answers it once (the key is what makes the retry safe)."""
        key = idempotency_key or uuid.uuid4().hex
        body: dict[str, Any] = {
            "household_id": household_id,
            "year": year,
            "channel": channel,
            "insurances": insurances,
        }
        if scene:
            body["scene"] = scene
        try:
            result: dict[str, Any] = self._json(
                "POST", "/api/v1/payments", body=body, headers={"Idempotency-Key": key}
            )
        except ApiError as exc:
            if exc.status != 0:
                raise
            result = self._json(
                "POST", "/api/v1/payments", body=body, headers={"Idempotency-Key": key}
            )
        return result

    def order(self, out_trade_no: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/api/v1/payments/{out_trade_no}")
        return result

    # Staff -------------------------------------------------------------------------------------

    def staff_login(self, username: str, password: str) -> str:
        answer = self._json(
            "POST", "/api/v1/auth/staff", body={"username": username, "password": password}
        )
        self.token = answer["token"]
        return str(answer.get("role", ""))

    def notifications(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every row of the finance callback log matching `filters`, page by page.

        By the log's id cursor, oldest first: a notification logged while this reads (a retry)
        lands after the cursor and is read once, never twice across a page boundary as with
        the old offset pages (which reported "2 applied payment notices" for one)."""
        cursor: str | None = None
        while True:
            params = {**filters, "limit": 500, "order": "asc"}
            if cursor:
                params["cursor"] = cursor
            response = self._call("GET", "/api/v1/finance/notifications", params=params)
            yield from response.json()
            cursor = response.headers.get("X-Next-Cursor")
            if not cursor:
                return
