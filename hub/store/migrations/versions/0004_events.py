"""events: transactional outbox and subscription delivery state

Revision ID: 0004
Revises: 0007
Create Date: 2026-11-30 11:28:05.105714
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox_event',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('recorded', sa.BigInteger(), nullable=False),
    sa.Column('pid', sa.BigInteger(), nullable=False),
    sa.Column('res_type', sa.String(length=64), nullable=False),
    sa.Column('res_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('change', sa.String(length=8), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('patients', sa.Text(), nullable=False),
    sa.Column('orgs', sa.Text(), nullable=False),
    sa.Column('old_status', sa.String(length=32), nullable=True),
    sa.Column('new_status', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_outbox_event'))
    )
    op.create_table('subscription_event',
    sa.Column('sub_id', sa.String(length=64), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('recorded', sa.BigInteger(), nullable=False),
    sa.Column('pid', sa.BigInteger(), nullable=False),
    sa.Column('res_type', sa.String(length=64), nullable=False),
    sa.Column('res_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('change', sa.String(length=8), nullable=False),
    sa.Column('patients', sa.Text(), nullable=False),
    sa.Column('old_status', sa.String(length=32), nullable=True),
    sa.Column('new_status', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('sub_id', 'number', name='pk_subscription_event')
    )
    op.create_table('subscription_state',
    sa.Column('sub_id', sa.String(length=64), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('filters', sa.Text(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('endpoint', sa.Text(), nullable=True),
    sa.Column('headers', sa.Text(), nullable=False),
    sa.Column('payload', sa.String(length=16), nullable=False),
    sa.Column('heartbeat', sa.Integer(), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('max_count', sa.Integer(), nullable=False),
    sa.Column('owner', sa.Text(), nullable=False),
    sa.Column('owner_key', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('end', sa.BigInteger(), nullable=False),
    sa.Column('events_total', sa.BigInteger(), nullable=False),
    sa.Column('delivered', sa.BigInteger(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('next_attempt', sa.BigInteger(), nullable=False),
    sa.Column('last_sent', sa.BigInteger(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.BigInteger(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('ws_token_hash', sa.String(length=64), nullable=True),
    sa.Column('ws_token_expires', sa.BigInteger(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sub_id', name=op.f('pk_subscription_state'))
    )
    with op.batch_alter_table('subscription_state', schema=None) as batch_op:
        batch_op.create_index('ix_subscription_state_due', ['status', 'next_attempt'], unique=False)
        batch_op.create_index('ix_subscription_state_owner', ['owner_key'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('subscription_state', schema=None) as batch_op:
        batch_op.drop_index('ix_subscription_state_owner')
        batch_op.drop_index('ix_subscription_state_due')

    op.drop_table('subscription_state')
    op.drop_table('subscription_event')
    op.drop_table('outbox_event')
