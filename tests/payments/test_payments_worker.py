"""The payments worker: one loop heals a lost notification and sends a due refund, and the
command stops cleanly on SIGTERM (as `make run` stops it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import requests
from sqlalchemy import select

from api.payments.healing import run_worker
from api.payments.models import PaymentOrder, Refund
from tests.conftest import TEST_PII_ENV, migrated_app
from tests.payments.factories import Member, make_account, make_household, token_for

ROOT = Path(__file__).resolve().parents[2]


def test_worker_round_heals_and_refunds(shop, sandbox) -> None:
    app = shop.app
    saved = app.config.get("APP_TODAY", "")
    app.config["APP_TODAY"] = "2019-11-05"
    db = app.extensions["database"]
    try:
        with app.app_context():
            session = db.session()
            household = make_household(session, [Member(date(1980, 1, 1))])
            account = make_account(session, household)
            session.commit()
            token, household_id = token_for(app, account), household.id
            db.session.remove()
        order = requests.post(
            shop.url + "/api/v1/payments",
            json={"household_id": household_id, "year": 2020, "channel": "wechat",
                  "insurances": ["medical"]},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "w"},
            timeout=30,
        ).json()  # fmt: skip
        requests.post(
            f"{sandbox.base_url}/sandbox/control/pay",
            json={"channel": "wechat", "out_trade_no": order["out_trade_no"], "faults": ["drop"]},
            timeout=30,
        )
        app.config["SETTINGS"].RECONCILE_AFTER_MINUTES = 0
        stop = threading.Event()
        with app.app_context():
            worker = threading.Thread(
                target=run_worker,
                args=(db, app.config["SETTINGS"]),
                kwargs={"interval": 0.1, "stop": stop},
            )
            worker.start()
            deadline = time.monotonic() + 15
            status = None
            while time.monotonic() < deadline:
                with app.app_context():
                    status = db.session().scalar(
                        select(PaymentOrder.status).where(
                            PaymentOrder.out_trade_no == order["out_trade_no"]
                        )
                    )
                    db.session.remove()
                if status == "paid":
                    break
                time.sleep(0.05)
            stop.set()
            worker.join(timeout=10)
        assert status == "paid"
        assert not worker.is_alive()
        with app.app_context():
            assert db.session().scalars(select(Refund)).all() == []
            db.session.remove()
    finally:
        app.config["APP_TODAY"] = saved


def test_worker_command_stops_on_sigterm(sqlite_database_url: str) -> None:
    migrated_app(sqlite_database_url)
    env = {
        **os.environ,
        "DATABASE_URL": sqlite_database_url,
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **TEST_PII_ENV,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "payments", "worker", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # SIGTERM only once the handler is in place ("started" is logged right after): on a
        # busy machine the imports alone can outlast a fixed sleep, and a SIGTERM during them
        # ends the process the default way (-15), which says nothing about the worker.
        seen = _wait_for_line(process, b"payments worker started", timeout=60)
        time.sleep(0.5)  # a round or two
        assert process.poll() is None, seen
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_for_line(process: subprocess.Popen[bytes], text: bytes, *, timeout: float) -> bytes:
    """Wait until a line of the process's output contains `text`; returns what was read.

    A thread reads the output (and keeps reading, so a full pipe never blocks the worker's
    logging): a process that hangs silently fails the test at the deadline instead of hanging.
    """
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[bytes] = []
    threading.Thread(target=lambda: lines.extend(iter(stdout.readline, b"")), daemon=True).start()
    deadline = time.monotonic() + timeout
    while not any(text in line for line in list(lines)):
        if time.monotonic() > deadline or process.poll() is not None:
            seen = b"".join(lines).decode(errors="replace")
            raise AssertionError(f"no {text!r} in the output: {seen}")
        time.sleep(0.05)
    return b"".join(lines)
