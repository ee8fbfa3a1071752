"""client key: every client-data table carries the client (Patient id) it belongs to

Revision ID: 0008
Revises: 0003
Create Date: 2026-11-30 16:00:00.000000

The column the tables are distributed on past one database (deploy/CITUS.md). Added nullable,
backfilled in batches of ``BATCH`` surrogate ids, then made NOT NULL:

- ``resource``: a Patient its own id; any other resource the lowest Patient id of its Patient
  compartments (``idx_compartment``); none: ``'#ref'`` (reference data; hub.store.clientkey);
- ``resource_history``, the ``idx_*`` tables (``idx_compartment`` too: there it is the resource's
  key beside the ``comp_id`` it names), ``resource_author``, ``resource_owner``: the resource's key,
  by ``pid``; ``care_source``: its source resource's key;
- ``delegation``: the key of the Consent it was derived from; a row added directly: the Patient with
  its ``patient_bsn`` (the lowest id), else ``'#ref'``.

The primary keys stay as they are: leading them with ``client_key`` is part of moving to Citus.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0003'
branch_labels = None
depends_on = None

#: Rows (by surrogate id range) per backfill statement.
BATCH = 5000
NO_CLIENT = '#ref'
BSN_SYSTEM = 'http://fhir.nl/fhir/NamingSystem/bsn'
INDEX_TABLES = ('idx_string', 'idx_token', 'idx_date', 'idx_reference', 'idx_quantity', 'idx_number', 'idx_uri')
#: Tables that copy the resource's key: (table, its pid column, the column its batches range over).
BY_PID = (('resource_history', 'pid', 'hid'), *((t, 'pid', 'pid') for t in INDEX_TABLES),
          ('idx_compartment', 'pid', 'pid'), ('resource_author', 'pid', 'pid'), ('resource_owner', 'pid', 'pid'),
          ('care_source', 'source_pid', 'source_pid'))
KEYED = ('resource', *(t for t, _p, _c in BY_PID), 'delegation')


def _batches(table: str, column: str) -> list[tuple[int, int]]:
    bind = op.get_bind()
    low, high = bind.execute(sa.text(f'SELECT min({column}), max({column}) FROM {table}')).one()  # noqa: S608
    if low is None:
        return []
    return [(start, start + BATCH) for start in range(int(low), int(high) + 1, BATCH)]


def _update(sql: str, table: str, column: str) -> None:
    bind = op.get_bind()
    for low, high in _batches(table, column):
        bind.execute(sa.text(sql), {'low': low, 'high': high, 'no_client': NO_CLIENT, 'bsn': BSN_SYSTEM})


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    # Code-point order on both databases (SQLite's default), as Python's min() in hub.store.clientkey.
    c_order = ' COLLATE "C"' if postgres else ''
    for table in KEYED:
        op.add_column(table, sa.Column('client_key', sa.String(length=64), nullable=True))
    _update(
        "UPDATE resource SET client_key = CASE WHEN res_type = 'Patient' THEN res_id ELSE COALESCE("
        f"(SELECT min(c.comp_id{c_order}) FROM idx_compartment c WHERE c.pid = resource.pid "
        "AND c.comp_type = 'Patient'), :no_client) END WHERE pid >= :low AND pid < :high",
        'resource', 'pid')
    for table, pid, column in BY_PID:
        _update(
            f"UPDATE {table} SET client_key = (SELECT r.client_key FROM resource r WHERE r.pid = {table}.{pid}) "  # noqa: S608
            f"WHERE {column} >= :low AND {column} < :high",
            table, column)
    _update(
        "UPDATE delegation SET client_key = COALESCE("
        "(SELECT r.client_key FROM resource r WHERE r.pid = delegation.source_pid), "
        f"(SELECT min(r.res_id{c_order}) FROM idx_token t JOIN resource r ON r.pid = t.pid "
        "WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.system = :bsn "
        "AND t.code = delegation.patient_bsn AND r.deleted = false), :no_client) "
        "WHERE id >= :low AND id < :high",
        'delegation', 'id')
    for table in KEYED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column('client_key', existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table('resource') as batch:
        batch.create_index('ix_resource_client', ['client_key', 'res_type', 'pid'], unique=False)
    _compartment_index(['comp_type', 'comp_id', 'res_type', 'pid', 'client_key'])


def _compartment_index(columns: list[str]) -> None:
    """The compartment index, ending with the key (the keys a compartment spans, from the index alone)."""
    with op.batch_alter_table('idx_compartment') as batch:
        batch.drop_index('ix_idx_compartment_comp')
        batch.create_index('ix_idx_compartment_comp', columns, unique=False)


def downgrade() -> None:
    _compartment_index(['comp_type', 'comp_id', 'res_type', 'pid'])
    with op.batch_alter_table('resource') as batch:
        batch.drop_index('ix_resource_client')
    for table in KEYED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('client_key')
