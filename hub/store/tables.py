"""The hub's tables, as SQLAlchemy Core metadata (Alembic migrations are generated from this).

Layout (after HAPI FHIR's JPA schema, simplified):

- ``resource``: the current version of every resource, one row per (type, id), with a surrogate
  integer ``pid`` that every index row points at. ``content`` is the resource JSON exactly as
  served (JSONB on PostgreSQL, TEXT on SQLite); a deleted resource keeps its row with
  ``deleted = true`` and ``content = NULL`` so that ids are never reused.
- ``resource_history``: every version ever written, in one global order (``hid``), which is what
  system-level ``_history`` pages through.
- ``idx_*``: search index rows for the *current* version, one table per search-parameter type.
  They are rewritten in the same transaction as the resource. Instants are stored as integer
  microseconds since the Unix epoch (UTC), so range comparisons are exact and identical on both
  databases. ``grp`` ties together the components of one composite-parameter occurrence
  (0 for plain rows).
- ``client_key`` on ``resource``, its history and its index rows: the client (Patient) the resource
  belongs to (:mod:`hub.store.clientkey`), the column the tables are distributed on past one database
  (deploy/CITUS.md).
- ``idx_compartment``: which Patient compartments a resource is in (from the R4
  CompartmentDefinition), for compartment search, ``$everything`` and the access filter.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from hub.fhir.instants import DATE_MAX, DATE_MIN
from hub.store.types import RawJSON

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
PidType = BigInteger().with_variant(Integer(), "sqlite")

resource = Table(
    "resource",
    metadata,
    Column("pid", PidType, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    # The data category (zorgplan, acp, overdracht, medisch, ...; hub.fhir.categories) the access
    # layer decides on.
    Column("category", String(32), nullable=False, default="medisch"),
    Column("content", RawJSON, nullable=True),
    # The client the resource belongs to (hub.store.clientkey): the Citus distribution column.
    Column("client_key", String(64), nullable=False),
    UniqueConstraint("res_type", "res_id", name="uq_resource_type_id"),
    Index("ix_resource_type_updated", "res_type", "last_updated"),
    Index("ix_resource_client", "client_key", "res_type", "pid"),
)

resource_history = Table(
    "resource_history",
    metadata,
    Column("hid", PidType, primary_key=True, autoincrement=True),
    Column("pid", BigInteger, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    # POST, PUT, PATCH or DELETE: the request.method of the history Bundle entry.
    Column("method", String(8), nullable=False),
    Column("content", RawJSON, nullable=True),
    # The data category of this version (a deletion: of the version it deleted); access to a
    # version is decided on its own category and clients (``history_compartment``).
    Column("category", String(32), nullable=False, default="medisch"),
    Column("client_key", String(64), nullable=False),
    UniqueConstraint("pid", "version", name="uq_history_pid_version"),
    Index("ix_history_type_updated", "res_type", "last_updated"),
    Index("ix_history_updated", "last_updated"),
)


def _index_table(name: str, *columns: Column, indexes: tuple[tuple[str, ...], ...]) -> Table:
    """An index-row table: ``pid`` + ``res_type`` + ``param`` + ``grp`` + its own value columns, and the
    resource's ``client_key`` (copied with every row, for the Citus placement)."""
    table = Table(
        name,
        metadata,
        Column("pid", BigInteger, nullable=False),
        Column("res_type", String(64), nullable=False),
        Column("param", String(100), nullable=False),
        Column("grp", Integer, nullable=False, default=0),
        *columns,
        Column("client_key", String(64), nullable=False),
    )
    Index(f"ix_{name}_pid", table.c.pid)
    for i, cols in enumerate(indexes):
        Index(f"ix_{name}_v{i}", *(table.c[c] for c in cols))
    return table


idx_string = _index_table(
    "idx_string",
    # Lower-cased, accents stripped, whitespace folded: what default and :contains match against.
    # C collation on PostgreSQL: code-point order, so a prefix search can seek the B-tree index
    # whatever the database's own collation is.
    Column("value_norm", String(255).with_variant(String(255, collation="C"), "postgresql"), nullable=False),
    Column("value_exact", Text, nullable=False),
    indexes=(("res_type", "param", "value_norm", "pid"),),
)

idx_token = _index_table(
    "idx_token",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    # Normalised display text (CodeableConcept.text, Coding.display, Identifier.type.text) for :text.
    Column("text_norm", String(255), nullable=True),
    # Identifier.type coding, for identifier:of-type=system|code|value.
    Column("type_system", String(255), nullable=True),
    Column("type_code", String(255), nullable=True),
    indexes=(("res_type", "param", "code", "system", "pid"),),
)

idx_date = _index_table(
    "idx_date",
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    indexes=(("res_type", "param", "low", "high", "pid"), ("res_type", "param", "high", "pid")),
)

idx_reference = _index_table(
    "idx_reference",
    # Local (relative) references: target type + id. Absolute/canonical references: target_url.
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("target_url", Text, nullable=True),
    # Reference.identifier, for the :identifier modifier.
    Column("ident_system", String(255), nullable=True),
    Column("ident_value", String(255), nullable=True),
    indexes=(
        ("res_type", "param", "target_id", "target_type", "pid"),
        ("target_type", "target_id", "param", "res_type", "pid"),
    ),
)

idx_quantity = _index_table(
    "idx_quantity",
    Column("value", Float, nullable=False),
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("unit", String(255), nullable=True),
    indexes=(("res_type", "param", "value", "pid"),),
)

idx_number = _index_table(
    "idx_number",
    Column("value", Float, nullable=False),
    indexes=(("res_type", "param", "value", "pid"),),
)

idx_uri = _index_table(
    "idx_uri",
    Column("value", Text, nullable=False),
    indexes=(("res_type", "param", "value", "pid"),),
)

idx_compartment = Table(
    "idx_compartment",
    metadata,
    Column("pid", BigInteger, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("comp_type", String(64), nullable=False),
    Column("comp_id", String(64), nullable=False),
    # The resource's own client key: differs from comp_id only for a resource in several clients'
    # compartments, so "which clients' rows does Patient X's compartment span" is one lookup.
    Column("client_key", String(64), nullable=False),
    Index("ix_idx_compartment_pid", "pid"),
    # client_key last: the keys a compartment spans are read from the index alone.
    Index("ix_idx_compartment_comp", "comp_type", "comp_id", "res_type", "pid", "client_key"),
)

#: Which Patient compartments one *version* was in (``hid`` of ``resource_history``): history and
#: vread decide on the version's own clients, not the current version's.
history_compartment = Table(
    "history_compartment",
    metadata,
    Column("hid", BigInteger, nullable=False),
    Column("comp_type", String(64), nullable=False),
    Column("comp_id", String(64), nullable=False),
    Index("ix_history_compartment_hid", "hid"),
    Index("ix_history_compartment_comp", "comp_type", "comp_id", "hid"),
)

#: Index table per search-parameter type (composite parameters write into their components' tables).
INDEX_TABLES: dict[str, Table] = {
    "string": idx_string,
    "token": idx_token,
    "date": idx_date,
    "reference": idx_reference,
    "quantity": idx_quantity,
    "number": idx_number,
    "uri": idx_uri,
}

#: The transactional outbox (hub.events.outbox): one row per write, in the write's transaction, for the
#: notification dispatcher (hub.events.delivery). The store writes it; hub.events reads it.
outbox_event = Table(
    "outbox_event",
    metadata,
    Column("seq", PidType, primary_key=True, autoincrement=True),
    Column("recorded", BigInteger, nullable=False),
    Column("pid", BigInteger, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    # create | update | delete
    Column("change", String(8), nullable=False),
    Column("category", String(32), nullable=False),
    # Space-separated Patient ids the resource belongs to (its Patient compartments).
    Column("patients", Text, nullable=False, default=""),
    # Space-separated URAs of the organisations a Task names as owner or requester.
    Column("orgs", Text, nullable=False, default=""),
    Column("old_status", String(32), nullable=True),
    Column("new_status", String(32), nullable=True),
)

__all__ = [
    "DATE_MAX",
    "DATE_MIN",
    "INDEX_TABLES",
    "history_compartment",
    "idx_compartment",
    "idx_date",
    "idx_number",
    "idx_quantity",
    "idx_reference",
    "idx_string",
    "idx_token",
    "idx_uri",
    "metadata",
    "outbox_event",
    "resource",
    "resource_history",
]
