"""One domain exception hierarchy, mapped to HTTP in one place (STYLE.md 10).

Services raise these; the API layer turns them into `{code, status, message, errors}` where
`code` is a stable machine string and `message` is Chinese for the resident or staff member who
reads it. Nothing here imports Flask, so workers and the CLI raise the same errors.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every expected failure a client can cause."""

    status: int = 400
    code: str = "bad_request"
    message: str = "请求有误"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        errors: Any = None,
        status: int | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.errors = errors
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "status": self.status, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class InvalidInput(DomainError):
    """Input that passed the schema but breaks a rule (422, with field errors)."""

    status = 422
    code = "validation_error"
    message = "提交的信息有误，请检查后重试"


class Unauthorized(DomainError):
    """Missing, expired or forged credentials."""

    status = 401
    code = "unauthorized"
    message = "请先登录"


class Forbidden(DomainError):
    """Authenticated, but not allowed to touch this resource."""

    status = 403
    code = "forbidden"
    message = "无权访问"


class NotFound(DomainError):
    """The resource does not exist (or is hidden from this caller)."""

    status = 404
    code = "not_found"
    message = "未找到"


class Conflict(DomainError):
    """The request conflicts with current state (duplicates, illegal transitions)."""

    status = 409
    code = "conflict"
    message = "与当前状态冲突"


class TooManyRequests(DomainError):
    """Throttled: too many failed attempts from one account or address.

    `retry_after` (seconds) becomes the response's Retry-After header (api.extensions.smorest).
    """

    status = 429
    code = "too_many_requests"
    message = "尝试次数过多，请稍后再试"

    def __init__(
        self, message: str | None = None, *, retry_after: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class UpstreamError(DomainError):
    """A gateway (WeChat, Alipay) failed or answered something we cannot accept."""

    status = 502
    code = "upstream_error"
    message = "支付渠道暂时不可用，请稍后再试"
