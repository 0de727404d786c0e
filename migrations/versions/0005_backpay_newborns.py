"""backpay approvals, contribution and order item kinds, item cover start

Revision ID: 0005_backpay_newborns
Revises: 0004_staff_login_failures
Create Date: 2026-12-04 19:54:16.604940
"""

from alembic import op
import sqlalchemy as sa
import api.db


revision = '0005_backpay_newborns'
down_revision = '0004_staff_login_failures'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('backpay_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('insurance', sa.String(length=16), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('pension_tier', sa.Integer(), nullable=True),
    sa.Column('document_no', sa.String(length=64), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('bureau', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('approved_by', sa.Integer(), nullable=False),
    sa.Column('approved_at', api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_by', sa.Integer(), nullable=True),
    sa.Column('withdrawn_at', api.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('withdrawal_reason', sa.String(length=200), nullable=True),
    sa.Column('paid_at', api.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('contribution_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['approved_by'], ['staff_accounts.id'], name=op.f('fk_backpay_approvals_approved_by_staff_accounts')),
    sa.ForeignKeyConstraint(['contribution_id'], ['contributions.id'], name=op.f('fk_backpay_approvals_contribution_id_contributions')),
    sa.ForeignKeyConstraint(['order_id'], ['payment_orders.id'], name=op.f('fk_backpay_approvals_order_id_payment_orders')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_backpay_approvals_person_id_persons')),
    sa.ForeignKeyConstraint(['withdrawn_by'], ['staff_accounts.id'], name=op.f('fk_backpay_approvals_withdrawn_by_staff_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backpay_approvals')),
    sa.UniqueConstraint('contribution_id', name=op.f('uq_backpay_approvals_contribution_id'))
    )
    with op.batch_alter_table('backpay_approvals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backpay_approvals_person_id'), ['person_id'], unique=False)
        batch_op.create_index('uq_backpay_approvals_live_person_insurance_year', ['person_id', 'insurance', 'year'], unique=True, sqlite_where=sa.text("status IN ('approved', 'paid')"), postgresql_where=sa.text("status IN ('approved', 'paid')"))

    with op.batch_alter_table('contributions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='premium', nullable=False))

    with op.batch_alter_table('payment_order_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='premium', nullable=False))
        batch_op.add_column(sa.Column('backpay_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('benefit_start', sa.Date(), nullable=True))
        batch_op.drop_constraint(batch_op.f('uq_payment_order_items_order_id_person_id_insurance'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_payment_order_items_order_id_person_id_insurance_year_kind'), ['order_id', 'person_id', 'insurance', 'year', 'kind'])



def downgrade() -> None:
    with op.batch_alter_table('payment_order_items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_payment_order_items_order_id_person_id_insurance_year_kind'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_payment_order_items_order_id_person_id_insurance'), ['order_id', 'person_id', 'insurance'])
        batch_op.drop_column('benefit_start')
        batch_op.drop_column('backpay_id')
        batch_op.drop_column('kind')

    with op.batch_alter_table('contributions', schema=None) as batch_op:
        batch_op.drop_column('kind')

    with op.batch_alter_table('backpay_approvals', schema=None) as batch_op:
        batch_op.drop_index('uq_backpay_approvals_live_person_insurance_year', sqlite_where=sa.text("status IN ('approved', 'paid')"), postgresql_where=sa.text("status IN ('approved', 'paid')"))
        batch_op.drop_index(batch_op.f('ix_backpay_approvals_person_id'))

    op.drop_table('backpay_approvals')
