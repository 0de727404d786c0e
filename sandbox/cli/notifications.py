"""`python -m sandbox notifications [--channel wechat|alipay] [--out-trade-no N] [--json]`."""

from __future__ import annotations

import argparse
from typing import Any

from sandbox.cli.client import ControlClient, ControlError, add_url_argument, fail, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("notifications", help="every notification attempt")
    add_url_argument(parser)
    parser.add_argument("--channel", choices=("wechat", "alipay"))
    parser.add_argument("--out-trade-no")
    parser.add_argument("--json", action="store_true", help="full entries as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    client = ControlClient(args.sandbox_url)
    params = {"out_trade_no": args.out_trade_no} if args.out_trade_no else {}
    entries: list[dict[str, Any]] = []
    try:
        for channel in [args.channel] if args.channel else ["wechat", "alipay"]:
            entries += client.get(f"/sandbox/{channel}/notifications", **params)
    except ControlError as exc:
        return fail(str(exc))
    entries.sort(key=lambda e: e.get("seq", 0))
    if args.json:
        print_json(entries)
        return 0
    for e in entries:
        if e.get("accepted"):
            verdict = "accepted"
        else:
            verdict = "retry" if e.get("event") == "attempt" else str(e.get("event"))
        outcome = e.get("status") or e.get("error") or "-"
        print(
            f"{e.get('time', '')[:19]}  {e.get('channel'):6} {e.get('api'):6} {e.get('kind'):8} "
            f"{e.get('out_trade_no')}  #{e.get('attempt', '-')}  {outcome}  {verdict}  "
            f"{','.join(e.get('faults') or [])}"
        )
    return 0
