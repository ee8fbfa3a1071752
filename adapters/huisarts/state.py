"""The adapter's durable state, a small SQLite file of its own (never the hub's database).

- ``mark``: per practice and client, the high-water mark: the latest ``meta.lastUpdated`` of the
  source records that are safely in the hub. It moves only after the hub committed the client's
  transaction, so a crash in between only makes the next run fetch (and find unchanged) a little more.
- ``synced``: every source record that is in the hub (practice, type, source id, hub id), so that a
  later change of such a record always follows, and a full run can find the ones deleted at the source.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from adapters.common.statefile import open_state

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mark (
    practice TEXT NOT NULL, bsn TEXT NOT NULL, last_updated TEXT NOT NULL, PRIMARY KEY (practice, bsn)
);
CREATE TABLE IF NOT EXISTS synced (
    practice TEXT NOT NULL, bsn TEXT NOT NULL, res_type TEXT NOT NULL, source_id TEXT NOT NULL,
    hub_id TEXT NOT NULL, removed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (practice, res_type, source_id)
);
CREATE INDEX IF NOT EXISTS ix_synced_client ON synced (practice, bsn);
"""


class SyncState:
    """One SQLite connection (WAL, synchronous=FULL: a mark written is a mark kept)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_state(path, _SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def mark(self, practice: str, bsn: str) -> str | None:
        row = self._db.execute(
            "SELECT last_updated FROM mark WHERE practice = ? AND bsn = ?", (practice, bsn)
        ).fetchone()
        return str(row[0]) if row else None

    def synced_ids(self, practice: str, bsn: str) -> dict[tuple[str, str], str]:
        """(type, source id) -> hub id of what is in the hub for one client (removed ones left out)."""
        rows = self._db.execute(
            "SELECT res_type, source_id, hub_id FROM synced WHERE practice = ? AND bsn = ? AND removed = 0",
            (practice, bsn),
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def commit_client(
        self,
        practice: str,
        bsn: str,
        mark: str | None,
        synced: Iterable[tuple[str, str, str]],
        removed: Iterable[tuple[str, str]] = (),
    ) -> None:
        """After the hub committed: remember what is there now and move the mark, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO synced (practice, bsn, res_type, source_id, hub_id, removed) VALUES (?, ?, ?, ?, ?, 0)"
                    " ON CONFLICT (practice, res_type, source_id) DO UPDATE SET hub_id = excluded.hub_id, removed = 0",
                    [(practice, bsn, t, s, h) for t, s, h in synced],
                )
                self._db.executemany(
                    "UPDATE synced SET removed = 1 WHERE practice = ? AND res_type = ? AND source_id = ?",
                    [(practice, t, s) for t, s in removed],
                )
                if mark is not None:
                    self._db.execute(
                        "INSERT INTO mark (practice, bsn, last_updated) VALUES (?, ?, ?)"
                        " ON CONFLICT (practice, bsn) DO UPDATE SET last_updated = excluded.last_updated",
                        (practice, bsn, mark),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise


__all__ = ["SyncState"]
