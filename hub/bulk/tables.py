"""The export tables, on the hub's one ``metadata``.

- ``export_job``: one row per kick-off. ``owner`` is who may poll and download (the requesting
  app's client id and subject); ``principal`` the caller's facts as JSON, so the access decision can
  be rebuilt; ``status`` goes queued -> in-progress -> completed | failed | cancelled.
- ``export_file``: one row per NDJSON file of a job (the file itself lives under
  ``var/exports/{job}/``), with the Patient ids whose data it holds (for the audit record).
Instants are integer µs since the Unix epoch (UTC), as everywhere in the store.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from hub.store.tables import metadata

export_job = Table(
    "export_job",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("owner", String(300), nullable=False),
    Column("principal", Text, nullable=False),
    Column("level", String(16), nullable=False),
    Column("group_id", String(64), nullable=True),
    Column("types", Text, nullable=True),
    Column("since", BigInteger, nullable=True),
    Column("request_url", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("transaction_time", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=True),
    #: When the runner last reported (every batch): a job whose runner went quiet may be taken over.
    Column("heartbeat", BigInteger, nullable=True),
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_export_job_owner", "owner"),
)

export_file = Table(
    "export_file",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("res_type", String(64), nullable=False),
    Column("count", Integer, nullable=False),
    Column("patients", Text, nullable=False),
)
