"""Bulk Data ``$export`` (FHIR Bulk Data Access IG, v2): jobs, the worker that writes NDJSON files,
and the tables that persist both. The HTTP side is :mod:`hub.api.operations.export` (kick-off) and
:mod:`hub.api.routes.bulk` (status, download, cancel)."""
