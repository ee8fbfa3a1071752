"""Where every table goes past one database: the Citus (distributed PostgreSQL) placement, as data.

The client (the Patient whose compartment a row belongs to) is the natural shard: a client's care plan,
ACP wishes, overdrachten, consents and access facts are read and written together, and almost every
request a client, a mantelzorger or a professional makes is about one client. So:

- ``distributed``: client data, hash-distributed on the client key (the Patient's id), all colocated,
  so one client's rows of every table sit on one shard and per-client queries stay single-shard;
- ``reference``: small tables every node needs in joins (registered apps, people), replicated to all;
- ``local``: tables that must keep one total order or one row (the audit hash chain and its head),
  on the coordinator (or a separate PostgreSQL), partitioned by time instead.

``missing`` names the client-data tables that do not carry the key yet, with the migration that adds
it (deploy/CITUS.md); :func:`citus_ddl` prints the placement as Citus DDL for after that migration.
A test keeps this in step with the schema: a new table must be placed here.
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
    """How one table is placed; ``key`` is its client-key column today (None: it has none yet)."""

    kind: Literal["distributed", "reference", "local"]
    key: str | None = None
    #: For distributed tables without the key: the migration that adds it (one line).
    missing: str | None = None
    note: str = ""


_BY_PID = ("add client_key (the Patient id of the resource's compartment, copied from resource.client_key "
           "in the same transaction) and make it the leading column of the primary key and indexes")

PLACEMENT: dict[str, Placement] = {
    # -- the store: resources, history, search index rows ------------------------------------------------
    "resource": Placement("distributed", missing=(
        "add client_key: the id of the Patient whose compartment the resource is in (a Patient: its own id; "
        "no compartment: reference data, moved to ref_resource); unique (client_key, res_type, res_id)")),
    "resource_history": Placement("distributed", missing=_BY_PID),
    "idx_string": Placement("distributed", missing=_BY_PID),
    "idx_token": Placement("distributed", missing=_BY_PID),
    "idx_date": Placement("distributed", missing=_BY_PID),
    "idx_reference": Placement("distributed", missing=_BY_PID),
    "idx_quantity": Placement("distributed", missing=_BY_PID),
    "idx_number": Placement("distributed", missing=_BY_PID),
    "idx_uri": Placement("distributed", missing=_BY_PID),
    "idx_compartment": Placement("distributed", key="comp_id", note="comp_type = 'Patient' rows; rename to "
                                 "client_key when the others get theirs"),
    "history_compartment": Placement("distributed", key="comp_id", note="each version's Patient compartments "
                                     "(per-version access); colocated with resource_history"),
    # -- access facts ----------------------------------------------------------------------------------
    "resource_author": Placement("distributed", missing=_BY_PID),
    "care_relation": Placement("distributed", key="patient_id"),
    "consent_rule": Placement("distributed", key="patient_id"),
    "access_grant": Placement("distributed", key="patient_id",
                              note="a professional's searches across all its clients fan out to every shard"),
    "delegation": Placement("distributed", missing=(
        "add client_key (the client's Patient id, resolved from patient_bsn when the delegation is written)")),
    "resource_owner": Placement("distributed", missing=_BY_PID),
    "overdracht_access": Placement("distributed", key="patient_id"),
    "care_source": Placement("distributed", missing=_BY_PID),
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
    "audit_patient": Placement("distributed", key="patient_id",
                               note="'who saw my data' is single-shard; the events are then fetched by seq"),
    # -- schema bookkeeping -------------------------------------------------------------------------------
    "alembic_version": Placement("local"),
}


def placement(table: str) -> Placement | None:
    return PLACEMENT.get(table)


def citus_ddl() -> list[str]:
    """The Citus statements that place the tables (to run after the client_key migration)."""
    out: list[str] = []
    for name, p in PLACEMENT.items():
        if p.kind == "reference":
            out.append(f"SELECT create_reference_table('{name}');")
        elif p.kind == "distributed":
            column = p.key if p.missing is None and p.key else CLIENT_KEY
            colocate = "" if name == ANCHOR else f", colocate_with => '{ANCHOR}'"
            out.append(f"SELECT create_distributed_table('{name}', '{column}'{colocate});")
    return out


if __name__ == "__main__":
    print("\n".join(citus_ddl()))


__all__ = ["ANCHOR", "CLIENT_KEY", "PLACEMENT", "Placement", "citus_ddl", "placement"]
