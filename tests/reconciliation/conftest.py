"""Reconciliation tests reuse the payments fixtures: the live API and the in-process sandbox."""

from tests.payments.conftest import (  # noqa: F401
    _sandbox_server,
    live_api,
    pg_live_api,
    pg_shop,
    sandbox,
    shop,
)
