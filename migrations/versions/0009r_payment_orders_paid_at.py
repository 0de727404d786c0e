"""payments: index payment_orders.paid_at (reconciliation reads one day of a season)

Revision ID: 0009r_payment_orders_paid_at
Revises: 0007r_reconciliation
Create Date: 2026-12-05 13:25:00.000000

Why: `api.payments.books` reads a channel's paid orders of one Beijing day for every bill
(`paid_keys_between`, `paid_total_between`); without an index on paid_at PostgreSQL scanned
every order of the season for it (bench/reconciliation.py, EXPLAIN at full scale). A plain
CREATE INDEX: lock and statement timeouts come from migrations/env.py; at the district's
~130,000 orders a season it builds in well under a second.
"""

from alembic import op


revision = '0009r_payment_orders_paid_at'
down_revision = '0008r_recon_refunds'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.create_index('ix_payment_orders_paid_at', ['paid_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_orders_paid_at')
