"""``hub audit export``: the log as FHIR NDJSON (one AuditEvent per line, bulk-data style).

Each line is the stored AuditEvent with ``id`` = its seq and one hub extension carrying the chain
facts (seq, previous hash, hash). Removing ``id`` and ``extension`` and canonicalizing gives back
exactly the bytes the hash covers, so an export can be re-verified away from the hub
(:func:`verify_lines`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, BinaryIO

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.canonical import canonical
from hub.audit.chain import link_hash
from hub.audit.tables import audit_log

CHAIN_EXTENSION = "https://zorgnet-hub.nl/fhir/StructureDefinition/audit-chain"


def with_chain(seq: int, prev_hash: str, chain_hash: str, event: str) -> bytes:
    """The exported form of one stored record (no parsing: the stored JSON is spliced in)."""
    ext = orjson.dumps(
        [
            {
                "url": CHAIN_EXTENSION,
                "extension": [
                    {"url": "seq", "valueString": str(seq)},
                    {"url": "prevHash", "valueString": prev_hash},
                    {"url": "hash", "valueString": chain_hash},
                ],
            }
        ]
    )
    return b'{"id":"' + str(seq).encode() + b'","extension":' + ext + b"," + event.encode("utf-8")[1:]


async def iter_export(
    conn: AsyncConnection, *, since_us: int | None = None, since_seq: int | None = None, chunk: int = 5000
) -> AsyncIterator[bytes]:
    """Exported lines (without newline) of records recorded at/after ``since_us`` and after ``since_seq``."""
    last = since_seq or 0
    while True:
        stmt = (
            select(audit_log.c.seq, audit_log.c.prev_hash, audit_log.c.hash, audit_log.c.event)
            .where(audit_log.c.seq > last)
            .order_by(audit_log.c.seq)
            .limit(chunk)
        )
        if since_us is not None:
            stmt = stmt.where(audit_log.c.recorded >= since_us)
        rows = (await conn.execute(stmt)).all()
        if not rows:
            return
        for seq, prev, h, event in rows:
            yield with_chain(int(seq), prev, h, event)
        last = int(rows[-1][0])


async def export_ndjson(conn: AsyncConnection, out: BinaryIO, **since: Any) -> int:
    """Write the export to ``out``; returns the number of records written."""
    n = 0
    async for line in iter_export(conn, **since):
        out.write(line)
        out.write(b"\n")
        n += 1
    return n


def verify_lines(lines: Iterable[bytes]) -> list[tuple[int, str]]:
    """Re-check exported lines: each hash recomputes, consecutive lines chain. Returns problems."""
    problems: list[tuple[int, str]] = []
    prev_seq: int | None = None
    prev_hash: str | None = None
    for raw in lines:
        if not raw.strip():
            continue
        resource = orjson.loads(raw)
        facts = {e["url"]: e["valueString"] for e in resource["extension"][0]["extension"]}
        seq = int(facts["seq"])
        stored = {k: v for k, v in resource.items() if k not in ("id", "extension")}
        if link_hash(facts["prevHash"], seq, canonical(stored)) != facts["hash"]:
            problems.append((seq, "hash does not match the content"))
        if prev_seq is not None and (seq != prev_seq + 1 or facts["prevHash"] != prev_hash):
            problems.append((seq, "does not chain to the previous line"))
        prev_seq, prev_hash = seq, facts["hash"]
    return problems


__all__ = ["CHAIN_EXTENSION", "export_ndjson", "iter_export", "verify_lines", "with_chain"]
