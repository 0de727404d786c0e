"""reconciliation refunds: stray refunds, excess refund total, item refund link

An approved reconciliation `refund` now moves money through the refund machinery: a trade that
is not ours is sent back as a `stray_refunds` row; an excess refund (the channel took more than
the order) carries the channel's trade total in `refunds.channel_total_fen`; an item holds the
refund it decided (`refund_out_refund_no`, `refund_amount_fen`). Only new tables and nullable
columns: nothing to backfill, no default needed.

Revision ID: 0008r_recon_refunds
Revises: 0007r_reconciliation
Create Date: 2026-12-05 13:05:53.115868
"""

from alembic import op
import sqlalchemy as sa
import api.db


revision = '0008r_recon_refunds'
down_revision = '0007r_reconciliation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stray_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('out_refund_no', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('out_trade_no', sa.String(length=64), nullable=False),
    sa.Column('transaction_id', sa.String(length=64), nullable=True),
    sa.Column('total_fen', sa.BigInteger(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('channel_refund_id', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('next_attempt_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('succeeded_at', api.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stray_refunds')),
    sa.UniqueConstraint('out_refund_no', name=op.f('uq_stray_refunds_out_refund_no'))
    )
    with op.batch_alter_table('stray_refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stray_refunds_out_trade_no'), ['out_trade_no'], unique=False)
        batch_op.create_index('ix_stray_refunds_state_next_attempt_at', ['state', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refund_out_refund_no', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('refund_amount_fen', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_reconciliation_items_refund_out_refund_no'), ['refund_out_refund_no'], unique=False)

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel_total_fen', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_column('channel_total_fen')

    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliation_items_refund_out_refund_no'))
        batch_op.drop_column('refund_amount_fen')
        batch_op.drop_column('refund_out_refund_no')

    with op.batch_alter_table('stray_refunds', schema=None) as batch_op:
        batch_op.drop_index('ix_stray_refunds_state_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_stray_refunds_out_trade_no'))

    op.drop_table('stray_refunds')
