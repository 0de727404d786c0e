"""reconciliation: runs (raw bill kept), difference items (suspense pool) and item history

Revision ID: 0007r_reconciliation
Revises: 0006_pii_encryption
Create Date: 2026-12-05 08:30:04.867965
"""

from alembic import op
import sqlalchemy as sa
import api.db


revision = '0007r_reconciliation'
down_revision = '0006_pii_encryption'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reconciliation_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('bill_raw', sa.LargeBinary(), nullable=True),
    sa.Column('bill_sha256', sa.String(length=64), nullable=True),
    sa.Column('bill_size', sa.Integer(), nullable=False),
    sa.Column('fetched_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('bill_rows', sa.Integer(), nullable=False),
    sa.Column('bill_total_fen', sa.BigInteger(), nullable=False),
    sa.Column('bill_refund_fen', sa.BigInteger(), nullable=False),
    sa.Column('bill_fee_fen', sa.BigInteger(), nullable=False),
    sa.Column('our_total_fen', sa.BigInteger(), nullable=False),
    sa.Column('our_refund_fen', sa.BigInteger(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('started_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', api.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_runs')),
    sa.UniqueConstraint('channel', 'bill_date', name=op.f('uq_reconciliation_runs_channel_bill_date'))
    )
    op.create_table('reconciliation_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('out_trade_no', sa.String(length=64), nullable=False),
    sa.Column('out_refund_no', sa.String(length=64), nullable=True),
    sa.Column('bill_amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('our_amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('bill_status', sa.String(length=32), nullable=True),
    sa.Column('our_status', sa.String(length=32), nullable=True),
    sa.Column('heal_result', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('resolution', sa.String(length=24), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('assignee', sa.String(length=64), nullable=True),
    sa.Column('maker', sa.String(length=64), nullable=True),
    sa.Column('checker', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('created_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', api.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['reconciliation_runs.id'], name=op.f('fk_reconciliation_items_run_id_reconciliation_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_items')),
    sa.UniqueConstraint('channel', 'bill_date', 'side', 'key', name=op.f('uq_reconciliation_items_channel_bill_date_side_key'))
    )
    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliation_items_out_trade_no'), ['out_trade_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_reconciliation_items_run_id'), ['run_id'], unique=False)
        batch_op.create_index('ix_reconciliation_items_status_type', ['status', 'type'], unique=False)

    op.create_table('reconciliation_item_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=24), nullable=True),
    sa.Column('to_status', sa.String(length=24), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['reconciliation_items.id'], name=op.f('fk_reconciliation_item_events_item_id_reconciliation_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_item_events'))
    )
    with op.batch_alter_table('reconciliation_item_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliation_item_events_item_id'), ['item_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reconciliation_item_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliation_item_events_item_id'))

    op.drop_table('reconciliation_item_events')
    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.drop_index('ix_reconciliation_items_status_type')
        batch_op.drop_index(batch_op.f('ix_reconciliation_items_run_id'))
        batch_op.drop_index(batch_op.f('ix_reconciliation_items_out_trade_no'))

    op.drop_table('reconciliation_items')
    op.drop_table('reconciliation_runs')
