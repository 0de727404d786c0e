"""pii: residents' ID numbers and names encrypted at rest, with a blind index of the ID number

Encrypts every existing row in place (persons' ID number and name, the outbox records and the
embedded queue's bodies) in batches of PII_MIGRATION_BATCH (default 5,000) rows by key order, under the keyring the app was
started with (api/pii). The blind index is filled in the same pass and becomes the unique key.
Rows already done are skipped (index set, body not JSON), so a run that was interrupted and
rolled back, or one on a partly converted copy, is simply run again. The downgrade decrypts.

Revision ID: 0006_pii_encryption
Revises: 0005_backpay_newborns
Create Date: 2026-12-04 19:40:00.000000
"""

import os
from collections.abc import Callable

from alembic import op
import sqlalchemy as sa

from api.pii.keyring import current


revision = '0006_pii_encryption'
down_revision = '0005_backpay_newborns'
branch_labels = None
depends_on = None

_ID, _NAME, _INDEX = 'persons.id_number', 'persons.name', 'persons.id_number'
_BODIES = (('outbox_messages', 'outbox.record'), ('queue_messages', 'outbox.record'))


def _rows(conn: sa.Connection, sql: str, after: object) -> list[sa.Row]:
    batch = int(os.environ.get('PII_MIGRATION_BATCH', '5000'))
    return list(conn.execute(sa.text(sql), {'after': after, 'n': batch}))


def _convert_bodies(conn: sa.Connection, convert: Callable[[str, str], str], todo: str) -> None:
    for table, purpose in _BODIES:
        after: object = ''
        if table == 'queue_messages':
            after = 0
        while rows := _rows(
            conn,
            f"SELECT id, body FROM {table} WHERE id > :after ORDER BY id LIMIT :n",
            after,
        ):
            changed = [
                {'i': i, 'b': convert(body, purpose)}
                for i, body in rows if body.startswith(todo)
            ]
            if changed:
                conn.execute(sa.text(f"UPDATE {table} SET body = :b WHERE id = :i"), changed)
            after = rows[-1][0]


def upgrade() -> None:
    keyring = current()
    conn = op.get_bind()
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('id_number_index', sa.String(length=40), nullable=True))
        batch_op.drop_constraint('uq_persons_id_number', type_='unique')
        batch_op.alter_column('id_number', existing_type=sa.String(length=18), type_=sa.Text(), existing_nullable=False)
        batch_op.alter_column('name', existing_type=sa.String(length=64), type_=sa.Text(), existing_nullable=False)

    after = 0
    while rows := _rows(
        conn,
        "SELECT id, id_number, name FROM persons WHERE id > :after"
        " AND id_number_index IS NULL ORDER BY id LIMIT :n",
        after,
    ):
        conn.execute(
            sa.text("UPDATE persons SET id_number = :n, name = :m, id_number_index = :x WHERE id = :i"),
            [
                {
                    'i': pid,
                    'n': keyring.encrypt(number, _ID),
                    'm': keyring.encrypt(name, _NAME),
                    'x': keyring.index(number, _INDEX),
                }
                for pid, number, name in rows
            ],
        )
        after = rows[-1][0]
    _convert_bodies(conn, keyring.encrypt, '{')

    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.alter_column('id_number_index', existing_type=sa.String(length=40), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_persons_id_number_index'), ['id_number_index'])


def downgrade() -> None:
    keyring = current()
    conn = op.get_bind()
    after = 0
    while rows := _rows(
        conn, "SELECT id, id_number, name FROM persons WHERE id > :after ORDER BY id LIMIT :n", after
    ):
        conn.execute(
            sa.text("UPDATE persons SET id_number = :n, name = :m WHERE id = :i"),
            [
                {'i': pid, 'n': keyring.decrypt(number, _ID), 'm': keyring.decrypt(name, _NAME)}
                for pid, number, name in rows
            ],
        )
        after = rows[-1][0]
    _convert_bodies(conn, keyring.decrypt, '1:')

    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_persons_id_number_index'), type_='unique')
        batch_op.alter_column('name', existing_type=sa.Text(), type_=sa.String(length=64), existing_nullable=False)
        batch_op.alter_column('id_number', existing_type=sa.Text(), type_=sa.String(length=18), existing_nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_persons_id_number'), ['id_number'])
        batch_op.drop_column('id_number_index')
