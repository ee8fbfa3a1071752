"""Where every table goes past one database: the Citus (distributed PostgreSQL) placement, as data.

The client (the Patient whose compartment a row belongs to) is the natural shard: a client's care plan,
ACP wishes, overdrachten, consents and access facts are read and written together, and almost every
request a client, a mantelzorger or a professional makes is about one client. So:

- ``distributed``: client data, hash-distributed on the client key (the Patient's id), all colocated,
  so one client's rows of every table sit on one shard and per-client queries stay single-shard;
- ``reference``: small tables every node needs in joins (registered apps, people), replicated to all;
- ``local``: tables that must keep one total order or one row (the audit hash chain and its head),
  on the coordinator (or a separate PostgreSQL), partitioned by time instead.

Every distributed table carries its key (migration 0008 added ``client_key`` to the store's tables
and ``delegation``); :func:`citus_ddl` prints the placement as Citus DDL. A test keeps this in step
with the schema: a new table must be placed here, with its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The distribution column every client-data table will carry (the Patient id of the client).
CLIENT_KEY = "client_key"
#: The table the others are colocated with.
ANCHOR = "resource"


@dataclass(frozen=True, slots=True)
class Placement:
    """How one table is placed; ``key`` is the client-key column a distributed table is placed on."""

    kind: Literal["distributed", "reference", "local"]
    key: str | None = None
    note: str = ""


PLACEMENT: dict[str, Placement] = {
    # -- the store: resources, history, search index rows (every row with its resource's key) ------------
    "resource": Placement(
        "distributed",
        key=CLIENT_KEY,
        note=(
            "a Patient: its own id; else the lowest Patient id of its compartments; none: NO_CLIENT "
            "(reference data; hub.store.clientkey)"
        ),
    ),
    "resource_history": Placement("distributed", key=CLIENT_KEY),
    "idx_string": Placement("distributed", key=CLIENT_KEY),
    "idx_token": Placement("distributed", key=CLIENT_KEY),
    "idx_date": Placement("distributed", key=CLIENT_KEY),
    "idx_reference": Placement("distributed", key=CLIENT_KEY),
    "idx_quantity": Placement("distributed", key=CLIENT_KEY),
    "idx_number": Placement("distributed", key=CLIENT_KEY),
    "idx_uri": Placement("distributed", key=CLIENT_KEY),
    "idx_compartment": Placement(
        "distributed",
        key="comp_id",
        note=(
            "placed by the client it names; its client_key column is the resource's own key, so a compartment "
            "search knows the shard(s) it spans"
        ),
    ),
    "history_compartment": Placement(
        "distributed",
        key="comp_id",
        note="each version's Patient compartments "
        "(per-version access); placed, like idx_compartment, by the client it names",
    ),
    # -- access facts ----------------------------------------------------------------------------------
    "resource_author": Placement("distributed", key=CLIENT_KEY),
    "care_relation": Placement("distributed", key="patient_id"),
    "consent_rule": Placement("distributed", key="patient_id"),
    "access_grant": Placement(
        "distributed", key="patient_id", note="a professional's searches across all its clients fan out to every shard"
    ),
    "delegation": Placement(
        "distributed", key=CLIENT_KEY, note="the client's Patient id, resolved from patient_bsn when the row is written"
    ),
    "resource_owner": Placement("distributed", key=CLIENT_KEY),
    "overdracht_access": Placement("distributed", key="patient_id"),
    "care_source": Placement("distributed", key=CLIENT_KEY, note="the source resource's key"),
    "break_glass": Placement("distributed", key="patient_id", note="emergency grants: one client each"),
    # -- notifications: a queue in one order, read by the workers with FOR UPDATE SKIP LOCKED -------------
    "outbox_event": Placement("local", note="the outbox: one commit order; partitioned by time"),
    "subscription_event": Placement("local", note="per-subscription event numbers follow the outbox"),
    "subscription_state": Placement("local", note="small: one row per subscription"),
    "export_job": Placement("local", note="Bulk Data jobs: few rows, polled by the requesting app"),
    "export_file": Placement("local", note="one row per NDJSON file of a job; the files live on disk"),
    # -- the authorization server: small, read everywhere ------------------------------------------------
    "oauth_client": Placement("reference"),
    "oauth_jti": Placement("reference", note="or a local table: only the token endpoint writes it"),
    "oauth_code": Placement("reference", note="or a local table: only the token endpoint writes it"),
    "person": Placement("reference"),
    "organisation": Placement("reference", note="the organisation registry: small, read by consent rules"),
    # -- the audit log: one hash chain is one total order -----------------------------------------------
    "audit_log": Placement("local", note="append-only, range-partitioned by seq/time; never distributed"),
    "audit_head": Placement("local", note="one row: the chain head"),
    "audit_checkpoint": Placement("local"),
    "audit_entity": Placement("local", note="follows audit_log's partitions"),
    "audit_patient": Placement(
        "distributed", key="patient_id", note="'who saw my data' is single-shard; the events are then fetched by seq"
    ),
    # -- schema bookkeeping -------------------------------------------------------------------------------
    "alembic_version": Placement("local"),
}


def placement(table: str) -> Placement | None:
    return PLACEMENT.get(table)


def citus_ddl() -> list[str]:
    """The Citus statements that place the tables."""
    out: list[str] = []
    for name, p in PLACEMENT.items():
        if p.kind == "reference":
            out.append(f"SELECT create_reference_table('{name}');")
        elif p.kind == "distributed":
            column = p.key or CLIENT_KEY
            colocate = "" if name == ANCHOR else f", colocate_with => '{ANCHOR}'"
            out.append(f"SELECT create_distributed_table('{name}', '{column}'{colocate});")
    return out


if __name__ == "__main__":
    print("\n".join(citus_ddl()))


__all__ = ["ANCHOR", "CLIENT_KEY", "PLACEMENT", "Placement", "citus_ddl", "placement"]
