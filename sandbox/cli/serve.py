"""`python -m sandbox serve [--port 8100] [--time-scale 1.0]`."""

from __future__ import annotations

import argparse
import contextlib
import logging
from typing import Any

from sandbox.server import SandboxServer
from sandbox.settings import SandboxSettings


def register(subparsers: Any) -> None:
    defaults = SandboxSettings.from_env()
    parser = subparsers.add_parser("serve", help="run the sandbox server")
    parser.add_argument("--host", default=defaults.SANDBOX_HOST)
    parser.add_argument("--port", type=int, default=defaults.SANDBOX_PORT)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=defaults.SANDBOX_TIME_SCALE,
        help="multiply vendor delays (retry schedules); 0.001 squeezes 24 h into ~87 s",
    )
    parser.add_argument("--public-url", default=defaults.SANDBOX_PUBLIC_URL)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sandbox %(levelname)s %(message)s")
    settings = SandboxSettings.from_env(
        SANDBOX_HOST=args.host,
        SANDBOX_PORT=args.port,
        SANDBOX_TIME_SCALE=args.time_scale,
        SANDBOX_PUBLIC_URL=args.public_url,
    )
    server = SandboxServer(settings).bind()
    base = server.base_url
    print(f"sandbox listening on {base} (time scale {args.time_scale})", flush=True)
    print(f"  WeChat Pay v2   {base}/pay/unifiedorder …   v3 {base}/v3/…", flush=True)
    print(f"  login           {base}/sns/jscode2session", flush=True)
    print(f"  Alipay          {base}/gateway.do", flush=True)
    print(f"  payer page      {base}/sandbox/pay/<wechat|alipay>/<out_trade_no>", flush=True)
    print("  state is in memory: restarting forgets every order", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0
