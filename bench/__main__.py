"""`python -m bench [--only NAME] [--quick]` (also `make bench BENCH_ARGS=...`).

Runs the registered benchmarks, prints one table and writes bench/results/latest.json and
latest.md. Each module in `BENCHMARKS` exposes `run(args) -> list[dict]` (rows as described in
bench/common.py); a module that is not there yet is reported as skipped.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from bench.common import meets_target, print_table, write_results

BENCHMARKS = [
    "bench.roster_import",
    "bench.http_throughput",
    "bench.notify_throughput",
    "bench.relay",
    "bench.pii",
    "bench.reconciliation",
    "bench.oversight",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="e.g. roster_import (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (0.1 scale roster)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    names = [m.removeprefix("bench.") for m in BENCHMARKS]
    if args.list:
        print("\n".join(names))
        return 0
    selected = [m for m in BENCHMARKS if not args.only or m.removeprefix("bench.") in args.only]
    if args.only and not selected:
        parser.error(f"unknown benchmark; choose from {', '.join(names)}")

    rows: list[dict[str, Any]] = []
    for module_name in selected:
        short = module_name.removeprefix("bench.")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            rows.append({"bench": short, "name": short, "skipped": "not written yet"})
            continue
        print(f"== {short}", file=sys.stderr, flush=True)
        rows.extend(module.run(args))

    print()
    print_table(rows)
    path = write_results(rows, args={"only": args.only, "quick": args.quick})
    print(f"\nresults: {path} (+ latest.md)")
    return 1 if any(meets_target(r) is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
