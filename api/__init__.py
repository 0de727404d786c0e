"""The premium-payment backend: `create_app()` builds everything; nothing connects at import."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, g, request
from flask_migrate import Migrate
from sqlalchemy import text

from api.config import PROJECT_ROOT, Config
from api.db import DATABASE_RETRY_AFTER_SECONDS, Base, Database
from api.extensions.docs import STATIC_URL as DOCS_STATIC_URL
from api.extensions.docs import register_docs_static
from api.extensions.inputs import install_converters
from api.extensions.smorest import Api, error_response, install_chinese_field_messages
from api.logs import configure_logging
from api.pii.keyring import install as install_keyring
from api.pii.keyring import load_keyring

log = logging.getLogger(__name__)

# Longest request target (path and query) the app accepts; gunicorn.conf.py lets longer ones
# through to here so that they get a JSON 414 rather than gunicorn's HTML page.
MAX_URI_BYTES = 4096


class _MigrateMetadata:
    """What Flask-Migrate needs of a 'db': only the metadata (our env.py owns the engine)."""

    metadata = Base.metadata


def create_app(config: Config | dict[str, Any] | None = None) -> Flask:
    """Build the application from `config` (a `Config`, or overrides of the environment)."""
    settings = config if isinstance(config, Config) else Config.from_env(**(config or {}))
    settings.validate()
    # Residents' ID numbers and names are encrypted at rest: no keys, no app (never plain text).
    install_keyring(load_keyring(settings))
    app = Flask(__name__, instance_path=str(PROJECT_ROOT / "instance"))
    app.config.update(settings.as_flask())
    app.config["SETTINGS"] = settings
    install_converters(app)
    app.config.update(
        API_TITLE="山亭区城乡居民社会保险缴费 API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=DOCS_STATIC_URL,
        OPENAPI_REDOC_PATH="/redoc",
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    configure_logging(settings.LOG_LEVEL)
    install_chinese_field_messages()

    if settings.DATABASE_URL.startswith("sqlite:///"):
        Path(settings.DATABASE_URL.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    database = Database(
        settings.DATABASE_URL, alive_window=settings.DATABASE_PING_AFTER_IDLE_MS / 1000
    )
    app.extensions["database"] = database
    Migrate(app, _MigrateMetadata(), directory=str(PROJECT_ROOT / "migrations"))

    from api import model_registry  # noqa: F401  (complete metadata before anything queries)

    api = Api(
        app,
        spec_kwargs={
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer"},
                }
            }
        },
    )
    from api.blueprints import register_blueprints

    register_blueprints(api)
    register_docs_static(app)
    if settings.PROXY_HOPS > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.PROXY_HOPS, x_proto=settings.PROXY_HOPS
        )
    _register_request_hooks(app, database)
    _register_health(app, database)
    from api.cli import register_cli

    register_cli(app)
    return app


def _register_request_hooks(app: Flask, database: Database) -> None:
    @app.before_request
    def _uri_length() -> Any:
        uri = request.environ.get("RAW_URI") or request.full_path
        if len(uri.encode("utf-8", "surrogateescape")) > MAX_URI_BYTES:
            return error_response(
                414,
                code="uri_too_long",
                message=f"请求地址过长（最多 {MAX_URI_BYTES} 字节）",
            )
        return None

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response: Any) -> Any:
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        # Rolls back whatever the request did not commit explicitly.
        database.session.remove()


def _register_health(app: Flask, database: Database) -> None:
    @app.get("/health")
    def health() -> Any:
        try:
            database.session().execute(text("SELECT 1"))
        except Exception:  # any driver failure means "not healthy", never a 500 page
            log.exception("health check: database unreachable")
            response = error_response(503, code="database_unavailable", message="数据库不可用")
            response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
            return response
        return {"status": "ok"}
