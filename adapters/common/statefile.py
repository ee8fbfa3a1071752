"""An adapter's own durable state: one small SQLite file per adapter, never the hub's database.

WAL with ``synchronous=FULL``: what the adapter wrote before a crash is there after it (a processed
message, a high-water mark), which is what makes restarting after kill -9 safe.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_state(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating it and its folder when new) the state file at ``path`` with ``schema`` applied.

    Autocommit mode: callers open their own ``BEGIN IMMEDIATE`` where several statements belong together.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db


__all__ = ["open_state"]
