"""oversight: index of paid contributions by year and paid_at (progress against the targets)

The progress view (api.oversight) reads the year's paid premiums up to the end of an as-of
Beijing day and probes the prior year's paid pension for new enrollees; both walk this
partial index. One statement in the migration's transaction, under the lock timeout that
migrations/env.py sets on PostgreSQL.

Revision ID: 0012o_oversight
Revises: 0011d_departments
Create Date: 2026-12-05 14:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0012o_oversight'
down_revision = '0011d_departments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contributions', schema=None) as batch_op:
        batch_op.create_index(
            'ix_contributions_paid_year_paid_at',
            ['year', 'paid_at'],
            unique=False,
            sqlite_where=sa.text("status = 'paid'"),
            postgresql_where=sa.text("status = 'paid'"),
        )


def downgrade() -> None:
    with op.batch_alter_table('contributions', schema=None) as batch_op:
        batch_op.drop_index(
            'ix_contributions_paid_year_paid_at',
            sqlite_where=sa.text("status = 'paid'"),
            postgresql_where=sa.text("status = 'paid'"),
        )
