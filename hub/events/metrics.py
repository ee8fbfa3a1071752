"""Delivery outcome counters: plain numbers a metrics endpoint can expose (Prometheus counters
``hub_notification_<outcome>_total``). One :class:`Counters` per worker; :data:`COUNTERS` is the
process-wide default the workers share unless given their own."""

from __future__ import annotations

from collections import Counter
from threading import Lock

#: The outcomes counted (events unless the name says notifications).
OUTCOMES = (
    "dispatched",  # outbox events fanned out (one per event, any number of subscriptions)
    "matched",  # (event, subscription) pairs created by the fan-out
    "delivered",  # events acknowledged by a receiver (2xx or websocket send)
    "withheld",  # events not sent: the subscriber may no longer read the resource
    "notifications",  # event-notification Bundles acknowledged
    "handshakes",  # handshakes acknowledged
    "heartbeats",  # heartbeats acknowledged
    "failed",  # delivery attempts that failed (non-2xx, timeout, connection error)
    "error",  # subscriptions put in status error
    "off",  # subscriptions switched off after too many failures (dead letters)
)


class Counters:
    """Thread-safe monotonic counters by outcome."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._values: Counter[str] = Counter()

    def inc(self, outcome: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._values[outcome] += n

    def get(self, outcome: str) -> int:
        return self._values[outcome]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {name: self._values[name] for name in OUTCOMES}


COUNTERS = Counters()
