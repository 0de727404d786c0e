"""outbox: the due index in the relay's publishing order (created_at, id), pending rows only

Revision ID: 0005_outbox_due_order
Revises: 0004_staff_login_failures
Create Date: 2026-11-29 07:40:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_outbox_due_order'
down_revision = '0004_staff_login_failures'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index('ix_outbox_messages_due', table_name='outbox_messages')
    op.create_index('ix_outbox_messages_due', 'outbox_messages', ['created_at', 'id'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index('ix_outbox_messages_due', table_name='outbox_messages')
    op.create_index('ix_outbox_messages_due', 'outbox_messages', ['next_attempt_at', 'created_at'],
                    unique=False, postgresql_where=PENDING, sqlite_where=PENDING)
