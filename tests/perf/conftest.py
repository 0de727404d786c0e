"""Plan tests reuse the payments package's in-process sandbox (login and payment gateways)."""

from tests.payments.conftest import _sandbox_server, sandbox  # noqa: F401  (fixtures)
