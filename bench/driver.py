"""The load generator: async virtual users (aiohttp, keep-alive, no think time) running a scenario
until a request count or a time limit is reached, whichever comes first, and the statistics
(throughput, p50/p95/p99, errors) of what they measured.

aiohttp rather than httpx because the load generator shares two cores with the hub and PostgreSQL:
it costs roughly a third of the CPU per request, and every result reports its CPU use anyway.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

FHIR_JSON = "application/fhir+json"


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def latency_summary(latencies: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max in milliseconds."""
    values = sorted(latencies)
    ms = 1000.0
    return {
        "p50_ms": round(percentile(values, 50) * ms, 2),
        "p95_ms": round(percentile(values, 95) * ms, 2),
        "p99_ms": round(percentile(values, 99) * ms, 2),
        "mean_ms": round(sum(values) / len(values) * ms, 2) if values else 0.0,
        "max_ms": round(values[-1] * ms, 2) if values else 0.0,
    }


class StopLoad(Exception):
    """Raised inside a scenario when the request budget is spent."""


@dataclass
class Recorder:
    """Sends requests for the virtual users and records each one's latency, by kind."""

    session: aiohttp.ClientSession
    base: str
    max_requests: int
    deadline: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    sent: int = 0

    def _budget(self) -> None:
        if self.sent >= self.max_requests or time.monotonic() >= self.deadline:
            raise StopLoad
        self.sent += 1

    async def request(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[int, bytes]:
        """One request; an unexpected status or a transport error counts as an error (never raised)."""
        self._budget()
        hdrs = {"Accept": FHIR_JSON, **(headers or {})}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            hdrs["Content-Type"] = FHIR_JSON
        start = time.perf_counter()
        try:
            async with self.session.request(method, f"{self.base}/{path}", data=data, headers=hdrs) as resp:
                payload = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._error(kind, f"{method} {path}: {type(exc).__name__}: {exc}")
            return 0, b""
        self.latencies.setdefault(kind, []).append(time.perf_counter() - start)
        if status not in expect:
            self._error(kind, f"{method} {path.split('?')[0]} -> {status}: {payload[:300]!r}")
        return status, payload

    def _error(self, kind: str, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message)


#: A scenario: one iteration of a virtual user (``vu`` index, iteration number).
Scenario = Callable[[Recorder, int, int], Awaitable[None]]


@dataclass
class LoadResult:
    workload: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    latencies: dict[str, list[float]]
    error_samples: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        everything = [x for values in self.latencies.values() for x in values]
        out: dict[str, Any] = {
            "workload": self.workload,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "errors": self.errors,
            "throughput_rps": round(self.throughput, 1),
            **latency_summary(everything),
        }
        if len(self.latencies) > 1:
            out["by_kind"] = {k: {"requests": len(v), **latency_summary(v)} for k, v in sorted(self.latencies.items())}
        if self.error_samples:
            out["error_samples"] = self.error_samples
        out.update(self.extra)
        return out


async def run_load(
    base: str,
    scenario: Scenario,
    *,
    workload: str,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    warmup_seconds: float = 1.0,
) -> LoadResult:
    """Run ``scenario`` in ``concurrency`` virtual users; a short unmeasured warm-up comes first."""
    connector = aiohttp.TCPConnector(limit=concurrency * 2, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if warmup_seconds > 0:
            warm = Recorder(session, base, max(50, max_requests // 10), time.monotonic() + warmup_seconds)
            await _users(warm, scenario, concurrency)
        rec = Recorder(session, base, max_requests, time.monotonic() + max_seconds)
        start = time.perf_counter()
        await _users(rec, scenario, concurrency)
        elapsed = time.perf_counter() - start
    return LoadResult(workload, concurrency, elapsed, rec.sent, rec.errors, rec.latencies, rec.error_samples)


async def _users(rec: Recorder, scenario: Scenario, concurrency: int) -> None:
    async def user(vu: int) -> None:
        for iteration in range(10_000_000):  # bounded; the recorder's budget ends it far sooner
            try:
                await scenario(rec, vu, iteration)
            except StopLoad:
                return

    await asyncio.gather(*(user(vu) for vu in range(concurrency)))


__all__ = ["LoadResult", "Recorder", "Scenario", "StopLoad", "latency_summary", "percentile", "run_load"]
