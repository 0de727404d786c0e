"""flask-smorest, subclassed once (the BEMServer way).

`Api` renders every error as `{code, status, message, errors?}` with a stable string `code` and a
Chinese `message`; `Blueprint` adds the login decorators that also document their 401/403
responses; `Schema` forbids unknown fields so a typo is a 422, not a silently ignored field.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, NoReturn

import marshmallow as ma
from flask import Response, jsonify, request
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from webargs.flaskparser import FlaskParser
from webargs.flaskparser import abort as abort_parsing
from werkzeug.exceptions import HTTPException

from api.db import DATABASE_RETRY_AFTER_SECONDS, is_outage
from api.errors import DomainError, TooManyRequests
from api.extensions import messages
from api.extensions.inputs import guard_schema

log = logging.getLogger(__name__)

# Stable machine code and a Chinese message for each HTTP status we may answer with.
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求格式有误"),
    401: ("unauthorized", "请先登录"),
    403: ("forbidden", "无权访问"),
    404: ("not_found", "未找到"),
    405: ("method_not_allowed", "不支持该请求方法"),
    409: ("conflict", "与当前状态冲突"),
    413: ("payload_too_large", "请求内容过大"),
    414: ("uri_too_long", "请求地址过长"),
    415: ("unsupported_media_type", "请求内容类型不受支持"),
    422: ("validation_error", "提交的信息有误，请检查后重试"),
    429: ("too_many_requests", "尝试次数过多，请稍后再试"),
    500: ("internal_error", "系统繁忙，请稍后再试"),
    502: ("upstream_error", "支付渠道暂时不可用，请稍后再试"),
    503: ("unavailable", "服务暂时不可用，请稍后再试"),
}


class ErrorSchema(ma.Schema):
    """The error body every `/api` endpoint answers with (documentation only)."""

    code = ma.fields.String(metadata={"description": "Stable machine code, e.g. validation_error"})
    status = ma.fields.Integer(metadata={"description": "HTTP status"})
    message = ma.fields.String(metadata={"description": "Message for a person (Chinese)"})
    errors = ma.fields.Dict(metadata={"description": "Field errors, by location and field"})


def error_response(
    status: int, *, code: str | None = None, message: str | None = None, errors: Any = None
) -> Response:
    default_code, default_message = HTTP_ERRORS.get(status, ("error", "请求失败"))
    body: dict[str, Any] = {
        "code": code or default_code,
        "status": status,
        "message": message or default_message,
    }
    if errors is not None:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    return response


class Api(_Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        super()._register_error_handlers()
        self._app.register_error_handler(DomainError, self.handle_domain_error)
        self._app.register_error_handler(DBAPIError, self.handle_database_error)
        self._app.register_error_handler(PoolTimeout, self.handle_database_error)

    def handle_http_exception(self, error: HTTPException) -> Any:  # type: ignore[override]
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        errors = data.get("errors", data.get("messages"))
        message = data.get("message")
        code = data.get("error_code")
        response = error_response(status, code=code, message=message, errors=errors)
        # werkzeug's own headers: `Allow` on a 405 (RFC 9110 15.5.6), `Retry-After`, …
        for key, value in error.get_headers():
            if key.lower() != "content-type":
                response.headers[key] = value
        for key, value in (data.get("headers") or {}).items():
            response.headers[key] = value
        return response

    def handle_database_error(self, error: DBAPIError | PoolTimeout) -> Response:
        """A database that cannot be reached is "try again" (503 + Retry-After), never a 500.

        `api.db.is_outage` says which errors those are: a connection refused or timed out at
        checkout, one that died mid-use (`api.db.ping_when_idle` trusts a connection used
        within the last half second, so a restart in that moment fails the request's first
        statement; the pool is invalidated and the next request reconnects), a server
        shutting down, a pool with no free connection. Any other driver error is a bug and
        goes on as the 500 it is.
        """
        if not is_outage(error):
            raise error
        log.warning("database unavailable during a request", exc_info=error)
        response = error_response(
            503, code="database_unavailable", message="服务暂时不可用，请稍后再试"
        )
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response

    def handle_domain_error(self, error: DomainError) -> Response:
        if error.status == 403:
            from api.auth.guards import record_access_refusal

            record_access_refusal(error)
        response = error_response(
            error.status, code=error.code, message=error.message, errors=error.errors
        )
        if isinstance(error, TooManyRequests) and error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response


class ArgumentsParser(FlaskParser):
    """webargs' Flask parser with the one message of its own in Chinese."""

    def _handle_invalid_json_error(
        self, error: Any, req: Any, *args: Any, **kwargs: Any
    ) -> NoReturn:
        abort_parsing(400, exc=error, messages={"json": ["请求体不是有效的 JSON"]})


class Blueprint(_Blueprint):
    """A flask-smorest Blueprint whose auth decorators document 401/403.

    Every argument schema (and the pagination schema) is guarded once, when the route is
    declared, by `api.extensions.inputs.guard_schema`: no endpoint can forget the bounds.
    """

    ARGUMENTS_PARSER = ArgumentsParser()
    PAGINATION_ARGUMENTS_PARSER = ArgumentsParser()

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        instance = schema() if isinstance(schema, type) else schema
        guard_schema(instance)
        return super().arguments(instance, *args, **kwargs)

    def _document_pagination_metadata(self, spec: Any, resp_doc: dict[str, Any]) -> None:
        """X-Pagination carries a JSON object: say so with `content` (OpenAPI 3.0, 4.7.21.1).

        flask-smorest documents it with `schema` alone, which means the `simple` style
        (`total,0,total_pages,0`) — not what it sends.
        """
        names = [
            "total",
            "total_pages",
            "first_page",
            "last_page",
            "page",
            "previous_page",
            "next_page",
        ]
        pages = {name: {"type": "integer"} for name in names}
        resp_doc.setdefault("headers", {})[self.PAGINATION_HEADER_NAME] = {
            "description": "Pagination metadata (JSON)",
            "content": {"application/json": {"schema": {"type": "object", "properties": pages}}},
        }

    def paginate(self, *args: Any, **kwargs: Any) -> Any:
        decorate = super().paginate(*args, **kwargs)

        def decorator(func: Callable[..., Any]) -> Any:
            wrapper = decorate(func)
            # flask-smorest builds a new schema class per decorated view and instantiates it
            # per request, so its declared fields are what to guard.
            guard_schema(wrapper._apidoc["pagination"]["parameters"]["schema"])
            return wrapper

        return decorator

    def login_required(
        self, *, kind: str = "resident", roles: tuple[str, ...] = (), load: bool = True
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """`load=False` (residents only): token check only, `g.account_id`; see guards."""
        from api.auth.guards import authenticate

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                authenticate(request, kind=kind, roles=roles, load=load)
                return func(*args, **kwargs)

            wrapper = self.alt_response(401, schema=ErrorSchema, description="未登录或令牌无效")(
                wrapper
            )
            wrapper = self.alt_response(403, schema=ErrorSchema, description="无权访问")(wrapper)
            doc = getattr(wrapper, "_apidoc", {})
            doc.setdefault("manual_doc", {})["security"] = [{"bearerAuth": []}]
            return wrapper

        return decorator


class Schema(ma.Schema):
    """Base schema: unknown fields are errors, not silently dropped."""

    class Meta:
        unknown = ma.RAISE


def install_chinese_field_messages() -> None:
    """Residents read field errors too: marshmallow's default messages in Chinese."""
    messages.install()


# Before any schema module (they all import this one) builds its validators.
install_chinese_field_messages()
