"""Benchmarks for the hub: a deterministic care-network generator, load workloads against a live
``hub serve`` on PostgreSQL, raw PostgreSQL baselines for the same work, and the reports (JSON,
Markdown, plot). Entry point: ``python -m bench`` (see :mod:`bench.__main__`)."""

__all__: list[str] = []
