"""``hub db reindex``: rebuild every search index row from stored resources, in batches."""

from __future__ import annotations

from sqlalchemy import false, select, update

from hub.fhir import jsonio
from hub.store.clientkey import client_key
from hub.store.db import Database
from hub.store.repository import Indexer
from hub.store.resources import write_index_rows
from hub.store.tables import resource


async def reindex(db: Database, indexer: Indexer, batch: int = 500, *, res_type: str | None = None) -> int:
    """Re-extract index rows for all current resources (of ``res_type``); one transaction per batch.
    The caller supplies the app's ``indexer`` (``hub db reindex`` takes it from the app's services,
    with the stored SearchParameters too)."""
    last_pid = 0
    total = 0
    only = () if res_type is None else (resource.c.res_type == res_type,)
    while True:
        async with db.write() as conn:
            rows = (
                await conn.execute(
                    select(resource.c.pid, resource.c.res_type, resource.c.res_id, resource.c.content)
                    .where(resource.c.pid > last_pid, resource.c.deleted == false(), *only)
                    .order_by(resource.c.pid)
                    .limit(batch)
                )
            ).all()
            for pid, res_type, res_id, content in rows:
                extracted = indexer(jsonio.loads(content))
                # New extraction rules can change the compartments, and so the client key.
                key = client_key(res_type, res_id, [i for t, i in extracted.compartments if t == "Patient"])
                await conn.execute(update(resource).where(resource.c.pid == pid).values(client_key=key))
                await write_index_rows(conn, pid, res_type, extracted, replace=True, key=key)
        if not rows:
            return total
        total += len(rows)
        last_pid = rows[-1][0]
