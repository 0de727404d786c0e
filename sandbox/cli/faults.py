"""`python -m sandbox faults set|clear|list` — faults global or per out_trade_no
(names: see `sandbox.faults`)."""

from __future__ import annotations

import argparse
from typing import Any

from sandbox.cli.client import ControlClient, ControlError, add_url_argument, fail, print_json
from sandbox.faults import ALL_FAULTS, FaultError, parse_faults


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("faults", help="set, clear or list faults", description=__doc__)
    add_url_argument(parser)
    actions = parser.add_subparsers(dest="action", required=True)
    set_parser = actions.add_parser("set", help=f"known: {', '.join(sorted(ALL_FAULTS))}")
    set_parser.add_argument("faults", nargs="+", metavar="FAULT")
    set_parser.add_argument("--out-trade-no", help="only this order (default: global)")
    clear = actions.add_parser("clear", help="clear faults (all, or one order's)")
    clear.add_argument("--out-trade-no")
    actions.add_parser("list", help="the faults in force")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    client = ControlClient(args.sandbox_url)
    try:
        if args.action == "set":
            parse_faults(args.faults)  # fail early, before talking to the sandbox
            print_json(
                client.post(
                    "/sandbox/control/faults",
                    {"faults": args.faults, "out_trade_no": args.out_trade_no},
                )
            )
        elif args.action == "clear":
            print_json(
                client.post(
                    "/sandbox/control/faults", {"clear": True, "out_trade_no": args.out_trade_no}
                )
            )
        else:
            print_json(client.get("/sandbox/control/faults"))
    except (ControlError, FaultError) as exc:
        return fail(str(exc))
    return 0
