"""Prometheus metrics (prometheus-client): one :class:`HubMetrics` per app, in the app's own registry.

Families (all prefixed ``hub_``):

- ``http_requests_total{interaction,status}`` and ``http_request_duration_seconds{interaction}``:
  every HTTP request, by FHIR interaction (``read``, ``search-type``, ``transaction``...; ``auth``,
  ``health``, ``metrics``, ``other`` outside ``/fhir``);
- ``db_pool_connections{pool,state}``: the SQLAlchemy pools (``main``, ``audit``), checked out / idle /
  overflow;
- ``audit_queue_depth``, ``audit_flush_seconds``, ``audit_records_total``: the group-commit writer;
- ``access_denials_total{reason}``: 401/403 answers, by a short reason (never the free text);
- ``break_glass_total{outcome,reason}``: emergency grants opened (by reason code) and refused;
- whatever other packages add through :meth:`HubMetrics.register` (notification backlog and
  delivery outcomes come from ``hub.events`` that way).

With several worker processes (``hub serve --workers N``) every process keeps its own values;
``PROMETHEUS_MULTIPROC_DIR`` (set by ``hub serve`` when N > 1) makes ``/metrics`` answer the sum
over all of them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Latency buckets (seconds): a point read is ~1 ms, a large transaction seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Why a 403 was answered, matched on the error's text in this order; the label never carries the text.
_FORBIDDEN_REASONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("scope", re.compile(r"scope", re.I)),
    ("break-glass", re.compile(r"emergency|break the glass", re.I)),
    ("no-care-relationship", re.compile(r"care relationship", re.I)),
    ("not-delegated", re.compile(r"delegat|act for", re.I)),
    ("consent", re.compile(r"consent", re.I)),
    ("role", re.compile(r"may not|do not write|reference data|only", re.I)),
)


def denial_reason(status: int, diagnostics: str) -> str:
    """A short, bounded label for why access was refused (401/403)."""
    if status == 401:
        if diagnostics.startswith("Invalid bearer token"):
            return "invalid-token"
        return "missing-token" if diagnostics.startswith("Authentication required") else "unauthenticated"
    for reason, pattern in _FORBIDDEN_REASONS:
        if pattern.search(diagnostics):
            return reason
    return "forbidden"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class HubMetrics:
    """The hub's metric families and the samplers that refresh the gauges before a scrape."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "hub_http_requests_total",
            "HTTP requests answered, by FHIR interaction and status.",
            ["interaction", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "hub_http_request_duration_seconds",
            "Time to answer an HTTP request, by FHIR interaction.",
            ["interaction"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pool = Gauge(
            "hub_db_pool_connections",
            "Database pool connections by state (checked_out, idle, overflow).",
            ["pool", "state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.audit_queue = Gauge(
            "hub_audit_queue_depth",
            "Audit records waiting for the group commit.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.audit_flush = Histogram(
            "hub_audit_flush_seconds",
            "Time to commit one group-commit batch of audit records.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_records = Counter(
            "hub_audit_records_total", "Audit records committed by the group-commit writer.", registry=r
        )
        self.denials = Counter(
            "hub_access_denials_total", "Requests refused (401/403), by reason.", ["reason"], registry=r
        )
        self.break_glass = Counter(
            "hub_break_glass_total",
            "Break-the-glass requests: grants opened (by reason code) and refused.",
            ["outcome", "reason"],
            registry=r,
        )
        self._samplers: list[Callable[[], None]] = []
        #: The counter and histogram children of each (interaction, status) seen: ``labels()``
        #: validates and looks them up under a lock on every call.
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}

    # -- hooks ------------------------------------------------------------------------------------
    def register(self, make: Callable[[CollectorRegistry], Any], sampler: Callable[[], None] | None = None) -> Any:
        """Add a package's own metric families: ``make(registry)`` creates them (returns whatever it
        builds, handed back to the caller); ``sampler`` refreshes gauges before every scrape.

        E.g. the notification worker: ``backlog = metrics.register(lambda r: Gauge("hub_notification_backlog",
        "...", registry=r), sampler=lambda: backlog.set(outbox.pending()))``.
        """
        built = make(self.registry)
        if sampler is not None:
            self._samplers.append(sampler)
        return built

    def add_sampler(self, sampler: Callable[[], None]) -> None:
        self._samplers.append(sampler)

    def watch_pool(self, name: str, engine: Any) -> None:
        """Sample a SQLAlchemy (async) engine's pool: checked out, idle and overflow connections."""
        pool = getattr(engine, "sync_engine", engine).pool

        def sample() -> None:
            for state, method in (("checked_out", "checkedout"), ("idle", "checkedin"), ("overflow", "overflow")):
                fn = getattr(pool, method, None)
                if fn is not None:
                    self.pool.labels(name, state).set(max(0, int(fn())))

        self._samplers.append(sample)

    def watch_audit(self, writer: Any) -> None:
        """Sample the audit writer's queue and observe every batch it commits."""
        self._samplers.append(lambda: self.audit_queue.set(writer.queue_depth))

        def on_batch(records: int, seconds: float) -> None:
            self.audit_flush.observe(seconds)
            self.audit_records.inc(records)

        writer.on_batch = on_batch

    # -- recording --------------------------------------------------------------------------------
    def observe_request(self, interaction: str, status: int, seconds: float) -> None:
        children = self._request_children.get((interaction, status))
        if children is None:
            children = (self.requests.labels(interaction, str(status)), self.latency.labels(interaction))
            self._request_children[(interaction, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_denial(self, status: int, diagnostics: str) -> None:
        self.denials.labels(denial_reason(status, diagnostics)).inc()

    def observe_break_glass(self, outcome: str, reason: str = "") -> None:
        """A break-the-glass request: ``opened`` with its reason code, or ``refused``."""
        self.break_glass.labels(outcome, reason).inc()

    def sample(self) -> None:
        for sampler in self._samplers:
            sampler()

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition (all worker processes' values summed in multiprocess mode)."""
        self.sample()
        directory = multiprocess_dir()
        if directory:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = ["LATENCY_BUCKETS", "HubMetrics", "denial_reason"]
