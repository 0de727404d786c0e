"""Serves Swagger UI's files from the `swagger-ui-bundle` package at `/docs/static/`.

flask-smorest's `/docs` page loads Swagger UI from a URL; a CDN is unreachable on the
offline machines this runs on (and a payments back office should not pull scripts from the
internet), so the files come from a pinned package instead.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, send_from_directory

STATIC_URL = "/docs/static/"


def register_docs_static(app: Flask) -> None:
    import swagger_ui_bundle

    folder = swagger_ui_bundle.swagger_ui_path
    blueprint = Blueprint("swagger_ui_static", __name__)

    @blueprint.get(f"{STATIC_URL}<path:filename>")
    def swagger_ui_file(filename: str) -> Response:
        return send_from_directory(folder, filename, max_age=86400)

    app.register_blueprint(blueprint)
