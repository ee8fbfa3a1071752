"""The adapter's own state in its own SQLite file: which transfers it holds and what it last mirrored.

A transfer is keyed by the sender's FHIR base and its Task id; ``mirrored`` is the last Task status the
sender acknowledged, so a state change that could not be delivered (counterpart down) is retried on the
next :meth:`~adapters.wijkverpleging.receiver.Receiver.mirror`. ``parked`` holds transfers refused as a whole.
``careplan_activity`` holds, per nursing activity, the shared care plan it is in and the status the nursing
system and the hub last agreed on (:mod:`adapters.wijkverpleging.zorgplan`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS transfer (
    sender_base TEXT NOT NULL,
    task_id TEXT NOT NULL,
    hub_task_id TEXT NOT NULL,
    mirrored TEXT NOT NULL,
    PRIMARY KEY (sender_base, task_id)
);
CREATE TABLE IF NOT EXISTS announced (
    receiver TEXT NOT NULL,
    reference TEXT NOT NULL,
    PRIMARY KEY (receiver, reference)
);
CREATE TABLE IF NOT EXISTS careplan_activity (
    activity_key TEXT PRIMARY KEY,
    hub_plan_id TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS parked (
    sender_base TEXT NOT NULL,
    task_id TEXT NOT NULL,
    offending TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL DEFAULT (datetime('now'))
);
"""


@dataclass(frozen=True)
class Transfer:
    sender_base: str
    task_id: str
    hub_task_id: str
    mirrored: str


class State:
    """Open (and create) the state file at ``path``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def save(self, transfer: Transfer) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO transfer VALUES (?, ?, ?, ?) ON CONFLICT (sender_base, task_id) DO UPDATE SET "
                "hub_task_id = excluded.hub_task_id, mirrored = excluded.mirrored",
                (transfer.sender_base, transfer.task_id, transfer.hub_task_id, transfer.mirrored),
            )

    def get(self, sender_base: str, task_id: str) -> Transfer | None:
        row = self.db.execute(
            "SELECT * FROM transfer WHERE sender_base = ? AND task_id = ?", (sender_base, task_id)
        ).fetchone()
        return Transfer(*row) if row else None

    def all(self) -> list[Transfer]:
        return [Transfer(*row) for row in self.db.execute("SELECT * FROM transfer ORDER BY sender_base, task_id")]

    def announce(self, receiver: str, refs: list[str]) -> None:
        """Record that ``receiver`` may pull ``refs`` (hub ``Type/id``): the closure of a Task sent to it."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO announced VALUES (?, ?)", [(receiver, r) for r in refs])

    def announced(self, receiver: str, reference: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM announced WHERE receiver = ? AND reference = ?", (receiver, reference)
        ).fetchone()
        return row is not None

    def park(self, sender_base: str, task_id: str, offending: str, reason: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO parked (sender_base, task_id, offending, reason) VALUES (?, ?, ?, ?)",
                (sender_base, task_id, offending, reason),
            )

    def parked(self) -> list[tuple[str, str, str, str]]:
        return list(self.db.execute("SELECT sender_base, task_id, offending, reason FROM parked ORDER BY rowid"))

    def agree(self, activity_key: str, hub_plan_id: str, status: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO careplan_activity VALUES (?, ?, ?)", (activity_key, hub_plan_id, status)
            )

    def agreed(self, activity_key: str) -> tuple[str, str] | None:
        row = self.db.execute(
            "SELECT hub_plan_id, status FROM careplan_activity WHERE activity_key = ?", (activity_key,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def careplans(self) -> list[str]:
        return [str(r[0]) for r in self.db.execute("SELECT DISTINCT hub_plan_id FROM careplan_activity ORDER BY 1")]
