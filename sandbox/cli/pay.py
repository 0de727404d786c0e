"""`python -m sandbox pay --channel wechat|alipay --out-trade-no N [--fault F ...]`:
pay one order of a running sandbox as the resident would (like `stripe trigger`).

With `--household H` instead of `--out-trade-no`, the resident's whole path against a running
API (login, bind, tiers, order, pay, outcome): see `sandbox.cli.resident`."""

from __future__ import annotations

import argparse
from typing import Any

from sandbox.cli import resident
from sandbox.cli.client import ControlClient, ControlError, add_url_argument, fail, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("pay", help="pay an order as the resident would")
    add_url_argument(parser)
    parser.add_argument("--channel", choices=("wechat", "alipay"), required=True)
    parser.add_argument("--out-trade-no", help="pay this existing order (or use --household)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="FAULT",
        help="e.g. duplicate, copies:3, delay:5, drop, forge_signature (repeatable)",
    )
    parser.add_argument(
        "--wait", type=float, default=0.0, help="then wait up to N s and show the attempts"
    )
    resident.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.household:
        return resident.run(args)
    if not args.out_trade_no:
        return fail("give --out-trade-no (an existing order) or --household (the whole path)")
    client = ControlClient(args.sandbox_url)
    try:
        result = client.post(
            "/sandbox/control/pay",
            {"channel": args.channel, "out_trade_no": args.out_trade_no, "faults": args.fault},
        )
        print_json(result)
        if args.wait > 0:
            client.post("/sandbox/control/wait-idle", {"timeout": args.wait})
            print_json(
                client.get(f"/sandbox/{args.channel}/notifications", out_trade_no=args.out_trade_no)
            )
    except ControlError as exc:
        return fail(str(exc))
    return 0
