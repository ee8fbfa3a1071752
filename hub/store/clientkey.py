"""The client key: which client (Patient) a row belongs to, the column the client-data tables are
distributed on past one database (deploy/CITUS.md, :mod:`hub.store.distribution`).

A Patient is its own client. Any other resource belongs to the Patient whose compartment it is in;
when it is in several (an Observation with a Patient as subject and another as performer), the lowest
Patient id: a rule SQL can compute from ``idx_compartment`` too, so the migration that backfilled the
key and every later write agree. A resource in no Patient compartment (Organization, Practitioner,
Location, Medication, conformance resources) is reference data and gets :data:`NO_CLIENT`, a value no
FHIR id can take.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ScalarSelect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.tables import resource

#: The key of rows that belong to no client (reference data); '#' never occurs in a FHIR id.
NO_CLIENT = "#ref"


def client_key(res_type: str, res_id: str, patients: Iterable[str]) -> str:
    """The client key of a resource, from the Patient compartments it is in."""
    if res_type == "Patient":
        return res_id
    return min(patients, default=NO_CLIENT)


#: Tables whose rows of a resource (by ``pid``) are not rewritten with every version but must carry
#: its current key: when a new version moves the resource to another client, they follow.
FOLLOW_BY_PID = (
    ("resource_history", "pid"),
    ("resource_author", "pid"),
    ("resource_owner", "pid"),
    ("care_source", "source_pid"),
)


async def move(conn: AsyncConnection, pid: int, key: str) -> None:
    """A version moved resource ``pid`` to client ``key`` (its subject changed): its older rows follow,
    so every row of a resource carries the resource's current key (rare; in the write's transaction)."""
    for table, column in FOLLOW_BY_PID:
        await conn.execute(
            text(f"UPDATE {table} SET client_key = :key WHERE {column} = :pid AND client_key <> :key"),  # noqa: S608
            {"key": key, "pid": pid},
        )


def key_of_resource(pid: Any) -> ScalarSelect[Any]:
    """``resource.client_key`` of ``pid``, as a scalar subquery: the derived tables (authorship,
    ownership) copy the key in the statement that writes them."""
    return select(resource.c.client_key).where(resource.c.pid == pid).scalar_subquery()


__all__ = ["FOLLOW_BY_PID", "NO_CLIENT", "client_key", "key_of_resource", "move"]
