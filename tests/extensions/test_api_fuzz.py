"""Standing fuzz test (issue 10): every operation of the OpenAPI document, every caller.

schemathesis generates requests from `/openapi.json` — valid ones and ones that break the
document — and sends them to the WSGI app on PostgreSQL (where NUL, int4 and date overflows
were 500s), unauthenticated and with resident, finance and tax tokens. Every answer must be
a non-5xx response that the document describes (status, content type, body, headers).

Bounded and reproducible: `derandomize=True` makes Hypothesis draw the same examples on
every run, `FUZZ_EXAMPLES` (default 20) per operation and caller keeps the whole file at
about a minute on two cores; raise it locally for a deeper search.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from tests.auth.conftest import alipay_keys, fake_alipay, fake_wechat, login_app
from tests.conftest import test_config as config_for

# The login gateways are the auth tests' fakes (real HTTP servers): a login then reaches a
# gateway that answers, as in production, instead of an unreachable one (502).
__all__ = ["alipay_keys", "fake_alipay", "fake_wechat", "login_app"]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
ROLES = ["anonymous", "resident", "finance", "tax"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def database_url(postgresql_database_url: str) -> str:
    """PostgreSQL only: it is the backend that refuses what SQLite silently stores."""
    return postgresql_database_url


def _document() -> dict[str, Any]:
    """The OpenAPI document, from an app that never connects (documents need no database).

    Loaded eagerly so that each operation is its own pytest item; the requests go to the
    PostgreSQL `app` of each test. (schemathesis' lazy `from_fixture` loader does not run on
    pytest 9.2: it sets `Node._nodeid`, which pytest no longer has.)
    """
    app = create_app(config_for("sqlite:///:memory:"))
    document: dict[str, Any] = app.test_client().get("/openapi.json").get_json()
    return document


schema = schemathesis.openapi.from_dict(_document())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx_or_off_contract(
    case: schemathesis.Case, login_app: Flask, callers: dict[str, Any]
) -> None:
    app = login_app
    # Each generated request goes out once per caller: the same input reaches the resident,
    # the staff and the anonymous paths of the operation.
    for role in ROLES:
        headers = {k: v for k, v in callers.get(role, {}).items() if k == "Authorization"}
        case.call_and_validate(app=app, headers=headers, checks=CHECKS)
