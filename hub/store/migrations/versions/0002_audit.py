"""audit log: hash-chained AuditEvents, signed checkpoints, append-only on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

APPEND_ONLY = ('audit_log', 'audit_patient', 'audit_entity', 'audit_checkpoint')

TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('recorded', sa.BigInteger(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('event', sa.Text(), nullable=False),
    sa.Column('type_code', sa.String(length=16), nullable=False),
    sa.Column('interaction', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=1), nullable=False),
    sa.Column('outcome', sa.String(length=2), nullable=False),
    sa.Column('agent_client', sa.String(length=200), nullable=True),
    sa.Column('agent_ura', sa.String(length=16), nullable=True),
    sa.Column('agent_user', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_recorded', ['recorded'], unique=False)
        batch_op.create_index('ix_audit_log_agent_ura', ['agent_ura', 'seq'], unique=False)

    op.create_table('audit_patient',
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('patient_id', 'seq', name=op.f('pk_audit_patient'))
    )
    with op.batch_alter_table('audit_patient', schema=None) as batch_op:
        batch_op.create_index('ix_audit_patient_seq', ['seq'], unique=False)
    op.create_table('audit_entity',
    sa.Column('ref', sa.String(length=140), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('ref', 'seq', name=op.f('pk_audit_entity'))
    )
    with op.batch_alter_table('audit_entity', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entity_seq', ['seq'], unique=False)
    op.create_table('audit_checkpoint',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_checkpoint'))
    )
    head = op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('checkpoint_seq', sa.BigInteger(), nullable=False),
    sa.Column('checkpoint_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.bulk_insert(head, [
        {'id': 1, 'last_seq': 0, 'last_hash': '0' * 64, 'checkpoint_seq': 0, 'checkpoint_at': 0},
    ])

    if op.get_bind().dialect.name == 'postgresql':
        op.execute(TRIGGER_FUNCTION)
        for table in APPEND_ONLY:
            op.execute(
                f'CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} '
                'FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()'
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in APPEND_ONLY:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_append_only ON {table}')
        op.execute('DROP FUNCTION IF EXISTS audit_append_only()')
    op.drop_table('audit_head')
    op.drop_table('audit_checkpoint')
    with op.batch_alter_table('audit_entity', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entity_seq')
    op.drop_table('audit_entity')
    with op.batch_alter_table('audit_patient', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_patient_seq')
    op.drop_table('audit_patient')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_agent_ura')
        batch_op.drop_index('ix_audit_log_recorded')
    op.drop_table('audit_log')
