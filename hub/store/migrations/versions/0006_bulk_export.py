"""bulk export: export jobs and their NDJSON files

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('export_job',
    sa.Column('job_id', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=300), nullable=False),
    sa.Column('principal', sa.Text(), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('group_id', sa.String(length=64), nullable=True),
    sa.Column('types', sa.Text(), nullable=True),
    sa.Column('since', sa.BigInteger(), nullable=True),
    sa.Column('request_url', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('transaction_time', sa.BigInteger(), nullable=False),
    sa.Column('finished', sa.BigInteger(), nullable=True),
    sa.Column('heartbeat', sa.BigInteger(), nullable=True),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('job_id')
    )
    op.create_index('ix_export_job_owner', 'export_job', ['owner'], unique=False)
    op.create_table('export_file',
    sa.Column('job_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('res_type', sa.String(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('patients', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('job_id', 'name')
    )


def downgrade() -> None:
    op.drop_table('export_file')
    op.drop_index('ix_export_job_owner', table_name='export_job')
    op.drop_table('export_job')
