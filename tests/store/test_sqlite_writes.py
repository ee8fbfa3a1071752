"""SQLite's one-trip writes (hub/store/sqlite_writes.py) fail as SQLAlchemy's statements do."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from hub.store import resources
from hub.store.db import Database
from hub.store.tables import metadata


class _Rows:
    rows: dict[str, list[dict[str, str]]] = {"token": [{"param": "identifier", "system": "s", "code": "c"}]}
    compartments: list[tuple[str, str]] = [("Patient", "p1")]


async def test_a_taken_id_is_an_integrity_error_and_leaves_nothing(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with db.write() as conn:
            await resources.insert_new(conn, "Observation", "o1", "{}", 1, "POST", _Rows())
        with pytest.raises(IntegrityError):
            async with db.write() as conn:
                await resources.insert_new(conn, "Observation", "o1", "{}", 2, "POST", _Rows())
        async with db.read() as conn:
            stored = await resources.get_current(conn, "Observation", "o1")
            history = await resources.get_version(conn, "Observation", "o1", 1)
        assert stored is not None and stored.last_updated == 1 and history is not None
    finally:
        await db.dispose()
