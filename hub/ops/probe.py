"""``hub db ping``: is the database reachable? (the worker's probe: it has no HTTP port)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from hub.store.db import Database


async def ping(database_url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """(reachable, a one-line message)."""
    db = Database(database_url, pool_size=1)
    try:
        async with asyncio.timeout(timeout):
            async with db.read() as conn:
                await conn.execute(text("SELECT 1"))
        return True, f"database ({db.dialect}) answers"
    except Exception as exc:  # any failure means "not reachable"
        return False, f"database ({db.dialect}) does not answer: {type(exc).__name__}: {exc}"
    finally:
        await db.dispose()


__all__ = ["ping"]
