"""workflows: resource owners and what an overdracht's receiver may read by the Task's state

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:00:00.000000

Existing resources get their owners from the organisations recorded as their authors. An
overdracht Task stored before this revision derives its rows on its next write.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('resource_owner',
    sa.Column('pid', sa.BigInteger(), nullable=False),
    sa.Column('party', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('pid', 'party', name=op.f('pk_resource_owner'))
    )
    op.create_table('overdracht_access',
    sa.Column('source_pid', sa.BigInteger(), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('org_ura', sa.String(length=16), nullable=False),
    sa.Column('task_status', sa.String(length=32), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False)
    )
    with op.batch_alter_table('overdracht_access', schema=None) as batch_op:
        batch_op.create_index('ix_overdracht_access_org', ['org_ura', 'target_type', 'target_id'], unique=False)
        batch_op.create_index('ix_overdracht_access_patient', ['patient_id'], unique=False)
        batch_op.create_index('ix_overdracht_access_source', ['source_pid'], unique=False)
        batch_op.create_index('ix_overdracht_access_target', ['target_type', 'target_id'], unique=False)
    op.execute(
        "INSERT INTO resource_owner (pid, party) SELECT pid, 'ura:' || ura FROM resource_author"
    )


def downgrade() -> None:
    with op.batch_alter_table('overdracht_access', schema=None) as batch_op:
        batch_op.drop_index('ix_overdracht_access_target')
        batch_op.drop_index('ix_overdracht_access_source')
        batch_op.drop_index('ix_overdracht_access_patient')
        batch_op.drop_index('ix_overdracht_access_org')
    op.drop_table('overdracht_access')
    op.drop_table('resource_owner')
