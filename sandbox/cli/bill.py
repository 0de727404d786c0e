"""`python -m sandbox bill --channel wechat|alipay --date YYYY-MM-DD [--type ALL] [--out F]`:
the bill in the vendor's format (WeChat text to stdout; Alipay zip to --out, or its detail
CSV to stdout)."""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from typing import Any

from sandbox.cli.client import ControlClient, ControlError, add_url_argument, fail


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bill", help="a channel's bill for a date")
    add_url_argument(parser)
    parser.add_argument("--channel", choices=("wechat", "alipay"), required=True)
    parser.add_argument("--date", required=True, help="YYYY-MM-DD (Alipay also YYYY-MM)")
    parser.add_argument("--type", default="ALL", help="WeChat bill_type: ALL, SUCCESS, REFUND")
    parser.add_argument("--out", help="write the file here instead of printing it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    client = ControlClient(args.sandbox_url)
    try:
        response = client.raw(
            f"/sandbox/control/bill/{args.channel}", date=args.date, type=args.type
        )
    except ControlError as exc:
        return fail(str(exc))
    if args.out:
        with open(args.out, "wb") as handle:
            handle.write(response.content)
        print(args.out)
        return 0
    if args.channel == "wechat":
        sys.stdout.write(response.content.decode("utf-8"))
        return 0
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        for info in archive.infolist():
            name = (
                info.filename.encode("cp437").decode("gbk")
                if not info.flag_bits & 0x800
                else info.filename
            )
            print(f"== {name}")
            sys.stdout.write(archive.read(info).decode("gbk"))
    return 0
