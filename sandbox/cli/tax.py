"""`python -m sandbox tax-consumer …` — hands over to `sandbox.tax` (the tax-side queue
consumer, maintained separately). Imported lazily: it works against the API's database and
queue, unlike the rest of the sandbox, which never imports `api/`."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tax-consumer",
        help="run the tax-side queue consumer (python -m sandbox.tax --help)",
        add_help=False,
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return forward(args.rest)


def forward(words: list[str]) -> int:
    from sandbox.tax.__main__ import main as tax_main

    return int(tax_main(words) or 0)
