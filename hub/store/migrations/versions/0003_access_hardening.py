"""access hardening: organisation registry, break-glass grants, entitled care relations,
per-version history access

Revision ID: 0003
Revises: 0006
Create Date: 2026-11-30 11:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organisation',
    sa.Column('ura', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('types', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('ura', name=op.f('pk_organisation'))
    )
    op.create_table('break_glass',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('org_ura', sa.String(length=16), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('reason_code', sa.String(length=32), nullable=False),
    sa.Column('reason_text', sa.Text(), nullable=False),
    sa.Column('practitioner', sa.String(length=64), nullable=True),
    sa.Column('start', sa.BigInteger(), nullable=False),
    sa.Column('end', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_break_glass'))
    )
    with op.batch_alter_table('break_glass', schema=None) as batch_op:
        batch_op.create_index('ix_break_glass_org', ['org_ura', 'patient_id', 'end'], unique=False)

    op.create_table('care_source',
    sa.Column('source_pid', sa.BigInteger(), nullable=False),
    sa.Column('grantor_kind', sa.String(length=16), nullable=False),
    sa.Column('grantor', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('source_pid', name=op.f('pk_care_source'))
    )
    op.execute(
        "INSERT INTO care_source (source_pid, grantor_kind) SELECT DISTINCT source_pid, 'hub' FROM care_relation"
    )
    with op.batch_alter_table('care_relation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('grantor_kind', sa.String(length=16), nullable=False, server_default='hub'))
        batch_op.add_column(sa.Column('grantor', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('eff_start', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('eff_end', sa.BigInteger(), nullable=True))
    op.execute('UPDATE care_relation SET eff_start = start, eff_end = "end"')
    with op.batch_alter_table('care_relation', schema=None) as batch_op:
        batch_op.alter_column('grantor_kind', server_default=None)

    with op.batch_alter_table('resource_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category', sa.String(length=32), nullable=False, server_default='medisch'))
    # Versions written before this revision take the category of the current version.
    op.execute(
        'UPDATE resource_history SET category = '
        '(SELECT r.category FROM resource r WHERE r.pid = resource_history.pid)'
    )
    with op.batch_alter_table('resource_history', schema=None) as batch_op:
        batch_op.alter_column('category', server_default=None)

    op.create_table('history_compartment',
    sa.Column('hid', sa.BigInteger(), nullable=False),
    sa.Column('comp_type', sa.String(length=64), nullable=False),
    sa.Column('comp_id', sa.String(length=64), nullable=False)
    )
    with op.batch_alter_table('history_compartment', schema=None) as batch_op:
        batch_op.create_index('ix_history_compartment_hid', ['hid'], unique=False)
        batch_op.create_index('ix_history_compartment_comp', ['comp_type', 'comp_id', 'hid'], unique=False)
    # Likewise their clients: those of the current version.
    op.execute(
        'INSERT INTO history_compartment (hid, comp_type, comp_id) '
        'SELECT h.hid, c.comp_type, c.comp_id FROM resource_history h JOIN idx_compartment c ON c.pid = h.pid'
    )


def downgrade() -> None:
    with op.batch_alter_table('history_compartment', schema=None) as batch_op:
        batch_op.drop_index('ix_history_compartment_comp')
        batch_op.drop_index('ix_history_compartment_hid')
    op.drop_table('history_compartment')
    with op.batch_alter_table('resource_history', schema=None) as batch_op:
        batch_op.drop_column('category')
    with op.batch_alter_table('care_relation', schema=None) as batch_op:
        batch_op.drop_column('eff_end')
        batch_op.drop_column('eff_start')
        batch_op.drop_column('grantor')
        batch_op.drop_column('grantor_kind')
    with op.batch_alter_table('break_glass', schema=None) as batch_op:
        batch_op.drop_index('ix_break_glass_org')
    op.drop_table('break_glass')
    op.drop_table('care_source')
    op.drop_table('organisation')
