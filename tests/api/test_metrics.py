"""``GET /metrics``: the Prometheus families the issue names, moving with real requests."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hub.api.metrics import denial_reason


async def scrape(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    for s in families[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return 0.0


async def test_metrics_families_move_with_requests(client: httpx.AsyncClient, client_as: Any) -> None:
    before = await scrape(client)
    created = await client.post("/fhir/Patient", json={"resourceType": "Patient", "active": True})
    assert created.status_code == 201
    pid = created.json()["id"]
    assert (await client.get(f"/fhir/Patient/{pid}")).status_code == 200
    assert (await client.get("/fhir/Patient", params={"active": "true"})).status_code == 200
    anonymous = client_as(None)
    assert (await anonymous.get(f"/fhir/Patient/{pid}")).status_code == 401
    bad = client_as(None, Authorization="Bearer not.a.token")
    assert (await bad.get(f"/fhir/Patient/{pid}")).status_code == 401
    after = await scrape(client)

    reqs = "hub_http_requests"
    assert (
        value(after, reqs, reqs + "_total", interaction="read", status="200")
        == value(before, reqs, reqs + "_total", interaction="read", status="200") + 1
    )
    assert value(after, reqs, reqs + "_total", interaction="create", status="201") >= 1
    assert value(after, reqs, reqs + "_total", interaction="search-type", status="200") >= 1
    assert value(after, reqs, reqs + "_total", interaction="read", status="401") >= 2
    lat = "hub_http_request_duration_seconds"
    assert after[lat].type == "histogram"
    assert value(after, lat, lat + "_count", interaction="read") >= 3
    assert value(after, lat, lat + "_bucket", interaction="read", le="+Inf") == value(
        after, lat, lat + "_count", interaction="read"
    )

    den = "hub_access_denials"
    assert (
        value(after, den, den + "_total", reason="missing-token")
        == value(before, den, den + "_total", reason="missing-token") + 1
    )
    assert (
        value(after, den, den + "_total", reason="invalid-token")
        == value(before, den, den + "_total", reason="invalid-token") + 1
    )

    assert {s.labels["pool"] for s in after["hub_db_pool_connections"].samples} >= {"main"}
    assert {s.labels["state"] for s in after["hub_db_pool_connections"].samples} >= {"checked_out", "idle"}
    assert "hub_audit_queue_depth" in after
    flush = "hub_audit_flush_seconds"
    assert value(after, flush, flush + "_count") > value(before, flush, flush + "_count")
    records = "hub_audit_records"
    assert value(after, records, records + "_total") > value(before, records, records + "_total")


async def test_a_forbidden_write_is_counted_by_reason(client: httpx.AsyncClient, client_as: Any) -> None:
    before = await scrape(client)
    as_client = client_as("client:999993653")
    r = await as_client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "x"})
    assert r.status_code == 403
    after = await scrape(client)
    den = "hub_access_denials"
    grew = {
        s.labels["reason"]
        for s in after[den].samples
        if s.name == den + "_total" and s.value > value(before, den, den + "_total", reason=s.labels["reason"])
    }
    assert len(grew) == 1
    assert grew <= {"scope", "role", "consent", "no-care-relationship", "not-delegated", "break-glass", "forbidden"}


def test_denial_reasons_are_bounded_labels() -> None:
    assert denial_reason(401, "Authentication required: send 'Authorization: Bearer <token>'") == "missing-token"
    assert denial_reason(401, "Invalid bearer token: claim 'exp' is missing") == "invalid-token"
    assert denial_reason(403, "The token's scopes do not allow 'read' on Patient") == "scope"
    assert denial_reason(403, "Organisation 1 has no care relationship with Patient/9") == "no-care-relationship"
    assert denial_reason(403, "Emergency access (break the glass) is for reading only") == "break-glass"
    assert denial_reason(403, "something new") == "forbidden"


async def test_register_hook_adds_a_family(hub_app: Any, client: httpx.AsyncClient) -> None:
    from prometheus_client import Gauge

    metrics = hub_app.state.metrics
    backlog = {"n": 0}
    gauge = metrics.register(
        lambda registry: Gauge("hub_test_backlog", "A family added through the hook.", registry=registry),
        sampler=lambda: gauge.set(backlog["n"]),
    )
    backlog["n"] = 7
    assert value(await scrape(client), "hub_test_backlog", "hub_test_backlog") == 7
    metrics.registry.unregister(gauge)
