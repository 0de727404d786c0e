"""collection: agent receipts, lines and per-village counters

Revision ID: 0010c_collection
Revises: 0009r_payment_orders_paid_at
Create Date: 2026-12-05 13:07:45.036925

New tables only (api/collection/models.py), nothing altered: the revision may be re-pointed
onto another head (0008r_recon_refunds) at merge time without a change to its body.
"""

from alembic import op
import sqlalchemy as sa
import api.db


revision = '0010c_collection'
down_revision = '0009r_payment_orders_paid_at'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('collection_receipt_counters',
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_collection_receipt_counters_village_id_villages')),
    sa.PrimaryKeyConstraint('village_id', 'year', name=op.f('pk_collection_receipt_counters'))
    )
    op.create_table('collection_receipts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('receipt_no', sa.String(length=32), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('issued_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('void_reason', sa.String(length=200), nullable=True),
    sa.Column('voided_at', api.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('voided_by', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['staff_accounts.id'], name=op.f('fk_collection_receipts_agent_id_staff_accounts')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_collection_receipts_household_id_households')),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_collection_receipts_village_id_villages')),
    sa.ForeignKeyConstraint(['voided_by'], ['staff_accounts.id'], name=op.f('fk_collection_receipts_voided_by_staff_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_receipts')),
    sa.UniqueConstraint('agent_id', 'idempotency_key', name=op.f('uq_collection_receipts_agent_id_idempotency_key')),
    sa.UniqueConstraint('receipt_no', name=op.f('uq_collection_receipts_receipt_no')),
    sa.UniqueConstraint('village_id', 'year', 'seq', name=op.f('uq_collection_receipts_village_id_year_seq'))
    )
    with op.batch_alter_table('collection_receipts', schema=None) as batch_op:
        batch_op.create_index('ix_collection_receipts_household_year', ['household_id', 'year'], unique=False)
        batch_op.create_index('ix_collection_receipts_village_year_id', ['village_id', 'year', 'id'], unique=False)

    op.create_table('collection_receipt_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('receipt_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('insurance', sa.String(length=16), nullable=False),
    sa.Column('pension_tier', sa.Integer(), nullable=True),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('contribution_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['contribution_id'], ['contributions.id'], name=op.f('fk_collection_receipt_lines_contribution_id_contributions')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_collection_receipt_lines_person_id_persons')),
    sa.ForeignKeyConstraint(['receipt_id'], ['collection_receipts.id'], name=op.f('fk_collection_receipt_lines_receipt_id_collection_receipts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_receipt_lines')),
    sa.UniqueConstraint('contribution_id', name=op.f('uq_collection_receipt_lines_contribution_id'))
    )
    with op.batch_alter_table('collection_receipt_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_collection_receipt_lines_receipt_id'), ['receipt_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('collection_receipt_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_collection_receipt_lines_receipt_id'))

    op.drop_table('collection_receipt_lines')
    with op.batch_alter_table('collection_receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_collection_receipts_village_year_id')
        batch_op.drop_index('ix_collection_receipts_household_year')

    op.drop_table('collection_receipts')
    op.drop_table('collection_receipt_counters')
