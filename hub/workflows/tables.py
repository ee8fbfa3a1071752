"""The workflow layer's facts, on the hub's one ``metadata`` (one Alembic history).

- ``resource_owner``: who created a resource (its first version, or its re-creation after a
  delete): ``ura:<URA>`` for an organisation, ``patient:<id>`` for the client, ``person:<id>`` for a
  mantelzorger, ``admin``. The ownership rules ask it; writes by the hub itself record nothing.
- ``overdracht_access``: what the receiver of an overdracht Task may read because of that Task,
  by state (:func:`hub.workflows.overdracht.access_scopes`): the Task (``task``), the advance
  notice with what it references and the client's Patient (``notice``), the nursing handoff with
  what its sections reference (``handoff``). Rows for documents not (yet) opened by the state are
  kept with ``active`` false, so that a later write of such a Composition finds its Tasks.
  Rewritten in the transaction of every write of the Task or of a Composition it names.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table

from hub.store.tables import metadata

resource_owner = Table(
    "resource_owner",
    metadata,
    Column("pid", BigInteger, primary_key=True),
    Column("party", String(80), primary_key=True),
    # The resource's client key, copied from resource.client_key in the same transaction.
    Column("client_key", String(64), nullable=False),
)

overdracht_access = Table(
    "overdracht_access",
    metadata,
    Column("source_pid", BigInteger, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("org_ura", String(16), nullable=False),
    Column("task_status", String(32), nullable=False),
    Column("target_type", String(64), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("active", Boolean, nullable=False),
    Index("ix_overdracht_access_org", "org_ura", "target_type", "target_id"),
    Index("ix_overdracht_access_source", "source_pid"),
    Index("ix_overdracht_access_target", "target_type", "target_id"),
    Index("ix_overdracht_access_patient", "patient_id"),
)

__all__ = ["overdracht_access", "resource_owner"]
