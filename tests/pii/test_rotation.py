"""Key rotation: old values read while `flask pii rotate` runs, retire refuses while a value
still uses the key, and binding keeps working while the blind index is rebuilt."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Text, select, type_coerce

from api.db import Database
from api.households.models import Person
from api.pii import keyring
from api.pii.crypto import Key, Keyring, PiiError
from tests.conftest import TEST_PII_INDEX_KEYS, TEST_PII_KEYS
from tests.households.household_factories import bearer, make_household, make_resident, member

BIND = "/api/v1/households/bind"
ID = "370406197906030317"


def _keys(spec: str) -> list[Key]:
    return keyring.parse_keys(spec, "test")


NEW_DATA = "k2:" + base64.b64encode(b"n" * 32).decode()
NEW_INDEX = "i2:" + base64.b64encode(b"x" * 32).decode()


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    saved = keyring._installed
    yield
    keyring.install(saved)  # type: ignore[arg-type]


def _family(app: Flask) -> tuple[int, int]:
    database: Database = app.extensions["database"]
    with app.app_context():
        session = database.session()
        household = make_household(
            session, members=[member("王小明", birth="1979-06-03", id_number=ID), member("李秀英")]
        )
        account = make_resident(session)
        session.commit()
        result = household.id, account.id
        database.session.remove()
    return result


def _stored(app: Flask) -> list[tuple[str, str, str]]:
    database: Database = app.extensions["database"]
    with database.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(
                    type_coerce(Person.id_number, Text),
                    type_coerce(Person.name, Text),
                    Person.id_number_index,
                ).order_by(Person.id)
            )
        ]


def _cli(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["pii", *args])
    return result.exit_code, result.output


def _bind(app: Flask, account: int) -> int:
    response = app.test_client().post(
        BIND, json={"id_number": ID, "name": "王小明"}, headers=bearer(app, account)
    )
    assert response.status_code == 200, response.get_json()
    household: int = response.get_json()["id"]
    return household


def test_data_key_rotation(committing_app: Flask, restore_keyring: None) -> None:
    app = committing_app
    household, account = _family(app)
    assert all(n.startswith("1:t1:") and m.startswith("1:t1:") for n, m, _ in _stored(app))

    keyring.install(Keyring(_keys(f"{NEW_DATA},{TEST_PII_KEYS}"), _keys(TEST_PII_INDEX_KEYS)))
    # During rotation: values under the old key still read, and binding works.
    assert _bind(app, account) == household
    code, output = _cli(app, "retire", "t1")
    assert code != 0 and "persons.id_number: 2" in output and "rotate" in output
    code, output = _cli(app, "retire", "k2")
    assert code != 0 and "current key" in output

    code, output = _cli(app, "rotate", "--batch", "1")
    assert code == 0, output
    assert all(n.startswith("1:k2:") and m.startswith("1:k2:") for n, m, _ in _stored(app))
    code, output = _cli(app, "rotate")
    assert code == 0 and "rotated 0 row(s)" in output  # resumable: nothing left to do
    code, output = _cli(app, "retire", "t1")
    assert code == 0, output

    keyring.install(Keyring(_keys(NEW_DATA), _keys(TEST_PII_INDEX_KEYS)))  # t1 removed
    assert _bind(app, account) == household


def test_index_key_rotation_keeps_lookups_working(
    committing_app: Flask, restore_keyring: None
) -> None:
    app = committing_app
    household, account = _family(app)
    before = _stored(app)
    keyring.install(Keyring(_keys(TEST_PII_KEYS), _keys(f"{NEW_INDEX},{TEST_PII_INDEX_KEYS}")))
    assert _bind(app, account) == household  # found through the old index value
    code, output = _cli(app, "status")
    assert code == 0 and "persons.id_number_index: ti1=2" in output
    code, output = _cli(app, "retire", "ti1")
    assert code != 0

    code, output = _cli(app, "rotate")
    assert code == 0, output
    after = _stored(app)
    assert all(ix.startswith("i2:") for _, _, ix in after)
    assert [ix for _, _, ix in after] != [ix for _, _, ix in before]
    assert _cli(app, "retire", "ti1")[0] == 0
    keyring.install(Keyring(_keys(TEST_PII_KEYS), _keys(NEW_INDEX)))
    assert _bind(app, account) == household


def test_a_tampered_stored_value_fails_loudly(app: Flask) -> None:
    database: Database = app.extensions["database"]
    with app.app_context():
        session = database.session()
        household = make_household(session, members=[member("王小明", id_number=ID)])
        person_id = household.members[0].id
        session.flush()
        stored = session.execute(
            select(type_coerce(Person.name, Text)).where(Person.id == person_id)
        ).scalar_one()
        flipped = stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1]
        session.execute(
            Person.__table__.update()
            .where(Person.__table__.c.id == person_id)
            .values({type_coerce(Person.__table__.c.name, Text): flipped})
        )
        session.expire_all()
        with pytest.raises(PiiError, match="tampered"):
            session.scalars(select(Person.name).where(Person.id == person_id)).one()


def test_comparing_an_encrypted_column_in_sql_is_refused() -> None:
    with pytest.raises(TypeError, match="blind index"):
        select(Person).where(Person.id_number == ID)
