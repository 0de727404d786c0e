"""`python -m sandbox reset` — forget every order, fault and log entry."""

from __future__ import annotations

import argparse
from typing import Any

from sandbox.cli.client import ControlClient, ControlError, add_url_argument, fail, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("reset", help="forget all sandbox state")
    add_url_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        print_json(ControlClient(args.sandbox_url).post("/sandbox/control/reset"))
    except ControlError as exc:
        return fail(str(exc))
    return 0
