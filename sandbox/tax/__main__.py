"""`python -m sandbox.tax` (also `python -m sandbox tax-consumer`): run the tax-side consumer.

Reads the same `QUEUE_URL` / `DATABASE_URL` as the API (empty `QUEUE_URL`: the embedded
database queue inside `DATABASE_URL`), books into its own SQLite file under instance/, and
acknowledges to the API as the `tax` staff account.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

from api.config import INSTANCE_DIR, Config
from api.payments.outbox.transports import open_subscriber, parse_queue_url
from api.pii.keyring import install as install_keyring
from api.pii.keyring import load_keyring
from sandbox.tax.acks import HttpAckSink
from sandbox.tax.consumer import TaxConsumer, reject_towns
from sandbox.tax.store import TaxStore


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m sandbox.tax", description=__doc__)
    settings = Config.from_env()
    parser.add_argument("--queue-url", default=settings.QUEUE_URL, help="default: $QUEUE_URL")
    parser.add_argument(
        "--database-url", default=settings.DATABASE_URL, help="for the embedded queue"
    )
    parser.add_argument(
        "--store-url",
        default=os.environ.get("TAX_STORE_URL", f"sqlite:///{INSTANCE_DIR / 'tax.sqlite3'}"),
        help="the tax side's own database (default instance/tax.sqlite3)",
    )
    parser.add_argument(
        "--api",
        default=os.environ.get(
            "TAX_API_BASE", f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
        ),
    )
    parser.add_argument("--username", default=os.environ.get("TAX_USERNAME", "tax"))
    parser.add_argument("--password", default=os.environ.get("TAX_PASSWORD", "tax12345"))
    parser.add_argument(
        "--reject-town",
        action="append",
        default=[],
        metavar="CODE",
        help="reject every record of this town (fault injection; repeatable)",
    )
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--once", action="store_true", help="drain the queue, then exit")
    return parser


def run(args: Any) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s tax-consumer %(levelname)s %(message)s"
    )
    target = parse_queue_url(args.queue_url, database_url=args.database_url)
    if not args.queue_url:
        # The embedded queue lives in the API's database, its bodies encrypted with the API's
        # keys (api/pii): reading it takes the same keys. A broker needs none (TLS instead).
        install_keyring(load_keyring(Config.from_env()))
    logging.info("consuming %s, booking into %s", target.describe(), args.store_url.split("?")[0])
    if args.store_url.startswith("sqlite:///"):
        os.makedirs(
            os.path.dirname(args.store_url.removeprefix("sqlite:///")) or ".", exist_ok=True
        )
    consumer = TaxConsumer(
        open_subscriber(args.queue_url, database_url=args.database_url),
        TaxStore(args.store_url),
        HttpAckSink(args.api, args.username, args.password),
        reject_rule=reject_towns(set(args.reject_town)) if args.reject_town else None,
        batch=args.batch,
    )
    if args.once:
        stats = consumer.drain()
        logging.info("drained: %s", stats)
        consumer.subscriber.close()
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    consumer.run(stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
