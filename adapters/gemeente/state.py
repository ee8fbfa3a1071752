"""The adapter's own durable state: a small SQLite file (WAL), separate from the hub.

- ``received``: every message processed, by content hash: its outcome and the retour sent, so the
  same message again gets the same retour (and changes nothing);
- ``message_key``: sender + kind + BerichtIdentificatie -> content hash (rule 9056: an identification
  used again for different content is refused);
- ``sent``: outbound messages written (with the RetourCodes of their retour once it arrives);
- ``emitted``: which hub facts have been turned into an outbound message (never sent twice);
- ``cursor``: where the outbound poll of the hub stands; ``counter``: retour/bericht numbering.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from adapters.common.statefile import open_state

_SCHEMA = """
CREATE TABLE IF NOT EXISTS received (
    hash TEXT PRIMARY KEY, msg_key TEXT, number TEXT NOT NULL, status TEXT NOT NULL,
    retour BLOB, reasons TEXT NOT NULL DEFAULT '', at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS message_key (msg_key TEXT PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sent (
    msg_key TEXT PRIMARY KEY, number TEXT NOT NULL, subject TEXT NOT NULL, file TEXT,
    retour_codes TEXT, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS emitted (mark TEXT PRIMARY KEY, msg_key TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS cursor (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


#: A processed message as remembered: content hash, key (when accepted), number, status, retour, reasons.
Row = tuple[str, str | None, str, str, bytes | None, str]


@dataclass(frozen=True)
class Received:
    hash: str
    number: str
    status: str
    retour: bytes | None
    reasons: str


class State:
    """One SQLite connection, used from one process (a lock makes it safe across threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_state(path, _SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def received(self, content_hash: str) -> Received | None:
        with self._lock:
            row = self._db.execute(
                "SELECT hash, number, status, retour, reasons FROM received WHERE hash = ?", (content_hash,)
            ).fetchone()
        return Received(*row) if row else None

    def key_hash(self, msg_key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT hash FROM message_key WHERE msg_key = ?", (msg_key,)).fetchone()
        return str(row[0]) if row else None

    def record(
        self, content_hash: str, msg_key: str | None, number: str, status: str, retour: bytes | None, reasons: str
    ) -> None:
        """Remember a processed message (its outcome and, when accepted, its key)."""
        self.record_many([(content_hash, msg_key, number, status, retour, reasons)])

    def record_many(self, rows: list[Row]) -> None:
        """Remember processed messages in one transaction (one sync to disk for a whole group)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO received (hash, msg_key, number, status, retour, reasons, at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(*row, now) for row in rows],
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO message_key (msg_key, hash) VALUES (?, ?)",
                    [(row[1], row[0]) for row in rows if row[1] is not None],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def next_numbers(self, name: str, count: int) -> range:
        """``count`` fresh numbers of the counter ``name`` (one transaction)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
                first = int(row[0] if row else 0) + 1
                self._db.execute(
                    "INSERT OR REPLACE INTO counter (name, value) VALUES (?, ?)", (name, first + count - 1)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return range(first, first + count)

    # -- outbound -------------------------------------------------------------------------------

    def emitted(self, mark: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM emitted WHERE mark = ?", (mark,)).fetchone() is not None

    def record_sent(self, msg_key: str, number: str, subject: str, file: str | None, marks: list[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO sent (msg_key, number, subject, file, at) VALUES (?, ?, ?, ?, ?)",
                    (msg_key, number, subject, file, time.time()),
                )
                for mark in marks:
                    self._db.execute(
                        "INSERT OR IGNORE INTO emitted (mark, msg_key, at) VALUES (?, ?, ?)",
                        (mark, msg_key, time.time()),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record_ack(self, msg_key: str, codes: list[str]) -> bool:
        """Store the RetourCodes a retour brought for a message we sent; False when we never sent it."""
        with self._lock:
            cur = self._db.execute("UPDATE sent SET retour_codes = ? WHERE msg_key = ?", (" ".join(codes), msg_key))
            return cur.rowcount > 0

    def sent_codes(self, msg_key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT retour_codes FROM sent WHERE msg_key = ?", (msg_key,)).fetchone()
        return row[0] if row else None

    def cursor(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM cursor WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def set_cursor(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO cursor (name, value) VALUES (?, ?)", (name, value))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, count(*) FROM received GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}
