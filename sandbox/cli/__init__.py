"""The sandbox command line (`python -m sandbox`), one module per command group.

    serve           run the sandbox server (like `stripe listen`)
    pay             pay an order as the resident would, optionally with faults (`stripe trigger`)
    faults          set, list or clear faults (global or per out_trade_no)
    notifications   every notification attempt the sandbox made
    bill            a channel's bill for a date, in the vendor's format
    reset           forget every order, fault and log entry
    tax-consumer    the tax-side queue consumer (sandbox/tax, runs against the API)
    scenario        a whole demo district pays against a running API (mix of faults)

To add a group, write `sandbox/cli/<name>.py` with `register(subparsers)` that adds its parser
and sets `func=`, then list the module in `COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "sandbox.cli.serve",
    "sandbox.cli.pay",
    "sandbox.cli.faults",
    "sandbox.cli.notifications",
    "sandbox.cli.bill",
    "sandbox.cli.reset",
    "sandbox.cli.tax",
    "sandbox.cli.scenario",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Local WeChat Pay / Alipay sandbox: serve it, trigger payments and faults.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["tax-consumer"]:
        # Its options belong to sandbox.tax's own parser; argparse's REMAINDER would refuse a
        # leading "--option" here, so hand the words over untouched.
        from sandbox.cli.tax import forward

        return forward(words[1:])
    args = build_parser().parse_args(words)
    return int(args.func(args) or 0)
