"""Helpers for the notification tests: a receiver process on loopback, a worker to drive, waits."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

RECEIVER = Path(__file__).resolve().parents[2] / "bench" / "events_receiver.py"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
TOPIC = "http://zorgnet.nl/fhir/SubscriptionTopic/"


@dataclass
class Receiver:
    url: str
    proc: subprocess.Popen[bytes]

    def state(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/state", timeout=10).json())

    def numbers(self, sub_id: str) -> list[int]:
        """Event numbers acknowledged for ``sub_id``, in arrival order (duplicates kept)."""
        return [
            e["number"]
            for n in self.state()["accepted"]
            if n["subscription"] == sub_id and n["type"] == "event-notification"
            for e in n["events"]
        ]


@contextmanager
def receiver(*args: str) -> Iterator[Receiver]:
    """Start the receiver process; stop it afterwards."""
    proc = subprocess.Popen([sys.executable, str(RECEIVER), *args], stdout=subprocess.PIPE)  # noqa: S603
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        assert line.startswith("READY "), line
        yield Receiver(f"http://127.0.0.1:{line.split()[1]}", proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def subscription(
    topic: str,
    endpoint: str | None,
    *,
    filters: tuple[str, ...] = (),
    payload: str = "id-only",
    channel: str = "rest-hook",
    headers: tuple[str, ...] = (),
    max_count: int | None = None,
    heartbeat: int | None = None,
) -> dict[str, Any]:
    ch: dict[str, Any] = {
        "type": channel,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": BACKPORT + "backport-payload-content", "valueCode": payload}]},
    }
    if endpoint is not None:
        ch["endpoint"] = endpoint
    if headers:
        ch["header"] = list(headers)
    exts = []
    if max_count is not None:
        exts.append({"url": BACKPORT + "backport-max-count", "valuePositiveInt": max_count})
    if heartbeat is not None:
        exts.append({"url": BACKPORT + "backport-heartbeat-period", "valueUnsignedInt": heartbeat})
    if exts:
        ch["extension"] = exts
    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"profile": [BACKPORT + "backport-subscription"]},
        "status": "requested",
        "reason": "test",
        "criteria": TOPIC + topic,
        "channel": ch,
    }
    if filters:
        body["_criteria"] = {
            "extension": [{"url": BACKPORT + "backport-filter-criteria", "valueString": f} for f in filters]
        }
    return body


async def wait_for(check: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


@contextmanager
def worker_process(app: Any, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """``hub worker`` as its own process on the app's database (and audit keys)."""
    import os

    settings = app.state.settings
    environment = {
        **os.environ,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_VAR_DIR": str(settings.var_dir),
        "HUB_ENVIRONMENT": "test",
        "HUB_LOG_LEVEL": "warning",
        "HUB_BASE_URL": settings.base_url,
        "HUB_EVENTS_POLL_SECONDS": "0.05",
        **env,
    }
    hub = Path(sys.executable).parent / "hub"
    proc = subprocess.Popen([str(hub), "worker"], env=environment)  # noqa: S603
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
