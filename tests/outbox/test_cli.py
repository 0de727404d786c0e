"""`flask outbox …` commands, the information-return export, and a relay process killed for real."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from api import clock
from api.audit.models import AuditEvent
from api.config import PROJECT_ROOT
from api.payments.outbox.export import HEADERS
from api.payments.outbox.models import DEAD, PENDING, SENT, OutboxMessage
from tests.conftest import TEST_PII_ENV
from tests.outbox.conftest import Harness, closed_port


@pytest.fixture
def cli_app(committing_app: Flask, harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """The committing app whose QUEUE_URL is the harness's (database queue or RabbitMQ)."""
    settings = dataclasses.replace(committing_app.config["SETTINGS"], QUEUE_URL=harness.queue_url)
    monkeypatch.setitem(committing_app.config, "SETTINGS", settings)
    return committing_app


def test_relay_once_publishes_and_status_counts(cli_app: Flask, harness: Harness) -> None:
    harness.enqueue(range(1, 8))
    runner = cli_app.test_cli_runner()

    result = runner.invoke(args=["outbox", "relay", "--once", "--batch", "3"])

    assert result.exit_code == 0, result.output
    assert "sent 7, failed 0, dead 0, outages 0" in result.output
    assert harness.consumer.drain().booked == 7
    status = runner.invoke(args=["outbox", "status"]).output
    assert "sent\t7" in status and "unacknowledged\t0" in status and "pending\t0" in status


def test_relay_once_exits_1_when_the_broker_is_down(
    cli_app: Flask, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = (
        f"amqp://guest:guest@127.0.0.1:{closed_port()}//"
        if harness.queue_url
        else f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/nowhere"
    )
    settings = dataclasses.replace(cli_app.config["SETTINGS"], QUEUE_URL=down)
    monkeypatch.setitem(cli_app.config, "SETTINGS", settings)
    harness.enqueue(range(1, 4))

    result = cli_app.test_cli_runner().invoke(args=["outbox", "relay", "--once"])

    assert result.exit_code == 1
    assert {m.status for m in harness.messages().values()} == {PENDING}


def test_dead_lists_and_retry_revives(cli_app: Flask, harness: Harness) -> None:
    ids = harness.enqueue(range(1, 4))
    with harness.database.job() as session:
        message = session.get(OutboxMessage, ids[0])
        assert message is not None
        message.status, message.attempts, message.last_error = DEAD, 5, "nacked by broker"
        message.dead_at = datetime.now(UTC)
    runner = cli_app.test_cli_runner()

    listed = runner.invoke(args=["outbox", "dead"]).output
    assert "1 record(s)" in listed and ids[0] in listed and "nacked by broker" in listed
    assert ids[1] not in listed

    assert "1 dead record(s)" in runner.invoke(args=["outbox", "retry", "--all"]).output
    assert runner.invoke(args=["outbox", "relay", "--once"]).exit_code == 0
    assert {m.status for m in harness.messages().values()} == {SENT}


def test_replay_command_marks_by_town(cli_app: Flask, harness: Harness) -> None:
    harness.enqueue(range(1, 4))
    harness.enqueue([9], town_code="370406002")
    harness.relay()
    today = clock.today().isoformat()  # a Beijing day, as the command reads --until

    result = cli_app.test_cli_runner().invoke(
        args=["outbox", "replay", "--since", "2019-01-01", "--until", today, "--town", "370406002"]
    )

    assert "1 record(s) marked" in result.output
    assert sorted(m.status for m in harness.messages().values()) == [PENDING, SENT, SENT, SENT]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_of_acknowledged_contributions(
    cli_app: Flask, harness: Harness, tmp_path: Path, fmt: str
) -> None:
    paid = harness.enqueue(range(1, 4))
    reversal = harness.enqueue([2], event="contribution.reversed", reason="退款")
    harness.enqueue([4], town_code="370406002")  # another town
    harness.enqueue([5], insurance="pension")  # another insurance
    harness.relay()
    harness.consumer.drain()
    harness.enqueue([6])  # not acknowledged yet: not in the return
    out = tmp_path / f"return.{fmt}"

    result = cli_app.test_cli_runner().invoke(
        args=[
            "outbox", "export", "--insurance", "medical", "--town", "370406001",
            "--from", "2019-11-01", "--to", "2019-11-30", "--format", fmt, str(out),
        ]
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    if fmt == "csv":
        raw = out.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # BOM for Excel
        table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    else:
        from openpyxl import load_workbook

        sheet = load_workbook(out).active
        assert sheet is not None
        table = [
            [c if c is not None else "" for c in row] for row in sheet.iter_rows(values_only=True)
        ]
    header, rows = table[0], table[1:]
    assert header == HEADERS and header[7:9] == ["公民身份号码", "姓名"]
    assert sorted(r[0] for r in rows) == sorted(paid + reversal)
    by_id = {r[0]: r for r in rows}
    assert by_id[paid[0]][7] == "37040619900100001X"  # full ID number, as text
    amount = header.index("个人缴费金额(元)")
    assert Decimal(str(by_id[paid[0]][amount])) == Decimal("260.00")  # a number in XLSX
    assert by_id[reversal[0]][1] == "冲正"
    assert Decimal(str(by_id[reversal[0]][amount])) == Decimal("-260.00")
    if fmt == "csv":
        assert by_id[paid[0]][amount] == "260.00"
    with harness.database.job() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.action == "tax.export")) == 1


HOSTILE_NAMES = ['=HYPERLINK("http://evil.example","点我")', "+SUM(1,2)", "-2+3", "@SUM(1+1)"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_writes_formula_like_names_as_text(
    cli_app: Flask, harness: Harness, tmp_path: Path, fmt: str
) -> None:
    """Issue 10, defect 6: such names came out as live formulas (openpyxl stores `=…` as one)."""
    for cid, name in enumerate(HOSTILE_NAMES, start=1):
        harness.enqueue([cid], name=name)
    harness.relay()
    harness.consumer.drain()
    out = tmp_path / f"return.{fmt}"

    result = cli_app.test_cli_runner().invoke(
        args=["outbox", "export", "--insurance", "medical", "--from", "2019-11-01",
              "--to", "2019-11-30", "--format", fmt, str(out)]
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    if fmt == "csv":
        table = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
        names = [r[8] for r in table[1:]]
    else:
        from openpyxl import load_workbook

        sheet = load_workbook(out).active
        assert sheet is not None
        assert not [c.coordinate for row in sheet.iter_rows() for c in row if c.data_type == "f"]
        names = [row[8] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert sorted(names) == sorted("'" + n for n in HOSTILE_NAMES)


@pytest.mark.slow
def test_relay_process_killed_with_sigkill_loses_nothing(harness: Harness) -> None:
    """A real `flask outbox relay` killed mid-stream; a new relay finishes, all booked once."""
    ids = set(harness.enqueue(range(1, 301)))
    env = {
        **os.environ,
        "DATABASE_URL": harness.database_url,
        "QUEUE_URL": harness.queue_url,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])
        ),
        **TEST_PII_ENV,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "outbox", "relay", "--batch", "1"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def sent() -> int:
        # A plain read: on SQLite the app's engine would BEGIN IMMEDIATE and queue behind (and
        # slow down) the relay's writes; a deferred read in WAL mode takes no lock.
        if harness.database_url.startswith("sqlite:///"):
            with closing(sqlite3.connect(harness.database_url.removeprefix("sqlite:///"))) as c:
                row = c.execute("SELECT count(*) FROM outbox_messages WHERE status = 'sent'")
                return int(row.fetchone()[0])
        with harness.database.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).where(OutboxMessage.status == SENT)) or 0)

    try:
        deadline = time.monotonic() + 60
        while sent() < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # 300 one-record batches: still mid-stream
    finally:
        process.wait(timeout=30)
    sent_before = sent()
    assert 10 <= sent_before < 300, "the relay should have been killed mid-stream"

    harness.relay()
    harness.consumer.drain()

    assert set(harness.store.booked()) == ids
    assert {m.status for m in harness.messages().values()} == {SENT}
    assert all(m.acknowledged_at for m in harness.messages().values())
