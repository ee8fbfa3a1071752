"""The workflow layer's facts, on the hub's one ``metadata`` (one Alembic history).

- ``resource_owner``: who created a resource (its first version, or its re-creation after a
  delete): ``ura:<URA>`` for an organisation, ``patient:<id>`` for the client, ``person:<id>`` for a
  mantelzorger, ``admin``. The ownership rules ask it; writes by the hub itself record nothing.
- ``overdracht_access``: what the receiver of an overdracht Task may read because of that Task
  (:func:`hub.workflows.overdracht.access_scopes`; written by :mod:`hub.workflows.derive`). It is an
  access fact the access filter joins, so it is defined with the others in :mod:`hub.access.tables`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table

from hub.access.tables import overdracht_access
from hub.store.tables import metadata

resource_owner = Table(
    "resource_owner",
    metadata,
    Column("pid", BigInteger, primary_key=True),
    Column("party", String(80), primary_key=True),
    # The resource's client key, copied from resource.client_key in the same transaction.
    Column("client_key", String(64), nullable=False),
)

__all__ = ["overdracht_access", "resource_owner"]
