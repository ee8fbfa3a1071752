"""The audit tables, on the hub's one ``metadata`` (one Alembic history).

- ``audit_log``: one row per interaction, ``seq`` is the one total order (assigned by the writer
  under the chain-head lock: 1, 2, 3 ... without gaps). ``event`` is the canonical JSON of the
  AuditEvent (what the hash covers); ``prev_hash``/``hash`` the chain. The other columns are
  derived from ``event`` for search (:func:`hub.audit.records.index_facts`) and re-checked by
  verification.
- ``audit_patient`` / ``audit_entity``: the Patient ids and resource references a record is
  about (many per record), keyed for "everything about client X" / "every access to resource Y".
- ``audit_checkpoint``: signed chain heads (see :mod:`hub.audit.checkpoints`).
- ``audit_head``: exactly one row (``id = 1``): the last seq and hash, and the last checkpoint.
  Every append locks it (``SELECT ... FOR UPDATE`` on PostgreSQL; the write lock on SQLite), which
  is what makes the order total across worker processes. The only audit table that is updated.

On PostgreSQL the migration adds triggers that refuse UPDATE, DELETE and TRUNCATE on the four
append-only tables, so not even the hub's own database role can rewrite history by accident.
Instants are integer µs since the Unix epoch (UTC), as everywhere in the store.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from hub.store.tables import metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("event", Text, nullable=False),
    # AuditEvent.type code ('rest', '110114'), first subtype code ('read', 'search-type', ...).
    Column("type_code", String(16), nullable=False),
    Column("interaction", String(32), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", String(2), nullable=False),
    # The application (client_id), organisation (URA) and human (practitioner id, person id, BSN).
    Column("agent_client", String(200), nullable=True),
    Column("agent_ura", String(16), nullable=True),
    Column("agent_user", String(64), nullable=True),
    Index("ix_audit_log_recorded", "recorded"),
    Index("ix_audit_log_agent_ura", "agent_ura", "seq"),
)

audit_patient = Table(
    "audit_patient",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    # Verification reads index rows by record range.
    Index("ix_audit_patient_seq", "seq"),
)

audit_entity = Table(
    "audit_entity",
    metadata,
    # 'Type/id' (no version).
    Column("ref", String(140), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Index("ix_audit_entity_seq", "seq"),
)

audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", String(128), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("checkpoint_seq", BigInteger, nullable=False),
    Column("checkpoint_at", BigInteger, nullable=False),
)

#: The tables PostgreSQL protects against UPDATE, DELETE and TRUNCATE.
APPEND_ONLY: tuple[str, ...] = ("audit_log", "audit_patient", "audit_entity", "audit_checkpoint")

__all__ = ["APPEND_ONLY", "audit_checkpoint", "audit_entity", "audit_head", "audit_log", "audit_patient"]
