"""auth: staff login failures, for throttling password guesses

Revision ID: 0004_staff_login_failures
Revises: 0003_payments
Create Date: 2026-11-29 07:25:00.000000
"""

from alembic import op
import sqlalchemy as sa
import api.db


revision = '0004_staff_login_failures'
down_revision = '0003_payments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('remote_addr', sa.String(length=64), nullable=False),
    sa.Column('at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_login_failures'))
    )
    op.create_index('ix_staff_login_failures_remote_addr_at', 'staff_login_failures', ['remote_addr', 'at'], unique=False)
    op.create_index('ix_staff_login_failures_username_at', 'staff_login_failures', ['username', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_staff_login_failures_username_at', table_name='staff_login_failures')
    op.drop_index('ix_staff_login_failures_remote_addr_at', table_name='staff_login_failures')
    op.drop_table('staff_login_failures')
