"""A loaded demo district, government batch booked: no ID number and no name in clear in a
`pg_dump` (PostgreSQL) or in the SQLite file, WAL included (issue 21)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import make_url

from api.db import Database
from api.households.models import Person, Town, Village
from tests import conftest


def _dump(app: Flask) -> bytes:
    database: Database = app.extensions["database"]
    url = database.engine.url
    if url.get_backend_name() == "sqlite":
        database.engine.dispose()  # checkpoints the WAL into the file
        path = Path(str(url.database))
        data = path.read_bytes()
        for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")):
            if extra.exists():
                data += extra.read_bytes()
        return data
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.fail("pg_dump is needed for this test")
    plain = make_url(url.render_as_string(hide_password=False)).set(drivername="postgresql")
    result = subprocess.run(
        [pg_dump, "--no-owner", plain.render_as_string(hide_password=False)],
        check=True,
        capture_output=True,
    )
    return result.stdout


@pytest.fixture(params=["sqlite", "postgresql"])
def loaded_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    """PostgreSQL: the committing app. SQLite: an app on a file of its own, because reading the
    file's bytes from this process (open + close) would drop the POSIX locks that the suite's
    other connections to a shared file hold (SQLite's documented way to corrupt a database)."""
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_committing_app")
        return
    import flask_migrate

    from api import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('at-rest') / 'district.sqlite3'}"
    app = create_app(conftest.test_config(url))
    with app.app_context():
        flask_migrate.upgrade()
    yield app
    app.extensions["database"].dispose()


def test_no_id_number_or_name_in_clear_at_rest(loaded_app: Flask) -> None:
    app = loaded_app
    app.config["APP_TODAY"] = "2019-11-05"
    runner = app.test_cli_runner()
    loaded = runner.invoke(args=["demo", "load", "--scale", "0.002"])
    assert loaded.exit_code == 0, loaded.output
    booked = runner.invoke(args=["payments", "government-batch", "--year", "2020"])
    assert booked.exit_code == 0, booked.output
    assert json.loads(booked.output.strip().splitlines()[-1])["persons"] > 0
    relayed = runner.invoke(args=["outbox", "relay", "--once"])  # into the embedded queue
    assert relayed.exit_code == 0, relayed.output

    database: Database = app.extensions["database"]
    with app.app_context():
        session = database.session()
        people = session.execute(select(Person.id_number, Person.name)).all()
        places = [*session.scalars(select(Town.name)), *session.scalars(select(Village.name))]
        database.session.remove()
    assert len(people) > 700
    dump = _dump(app)
    assert dump.count(b"1:t1:") > 2 * len(people)  # the rows are in it, encrypted
    leaked_ids = [n for n, _ in people if n.encode() in dump]
    assert leaked_ids == []
    # A two-character name may be part of a village's name (王庄): only such names may match.
    leaked_names = [
        name
        for _, name in people
        if name.encode("utf-8") in dump and not any(name in place for place in places)
    ]
    assert leaked_names == []
