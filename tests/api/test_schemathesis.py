"""Schemathesis on a live hub, on both databases, as an organisation and as a client: zero 5xx.

The OpenAPI document is the hub's own ``/openapi.json`` (generated from the CapabilityStatement).
The run inside ``make test`` is bounded (seeded, two examples per operation and mode over the care
types); ``make fuzz`` runs every type (``HUB_FUZZ_TYPES=all``) and ``make fuzz-deep`` more types with
many examples each (``HUB_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.fuzz import CORE_TYPES, DEEP_TYPES, examples_per_operation, run_schemathesis
from tests.api.live import LiveHub, live_hub

ORG = "org:00099999:practitioner:900009999"
CLIENT = "client:999993653"
SEED = int(os.environ.get("HUB_FUZZ_SEED", "20261130"))

#: Resources the fuzzer's fixed ids point at, so instance operations reach existing data.
SEED_RESOURCES = {
    "Patient": {
        "resourceType": "Patient",
        "id": "fuzz-patient",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999993653"}],
        "name": [{"family": "Fuzz"}],
    },
    "Organization": {"resourceType": "Organization", "id": "fuzz-org", "name": "Fuzz zorg"},
    "Practitioner": {"resourceType": "Practitioner", "id": "fuzz-practitioner", "name": [{"family": "Arts"}]},
    "Observation": {
        "resourceType": "Observation",
        "id": "fuzz-obs",
        "status": "final",
        "code": {"text": "gewicht"},
        "subject": {"reference": "Patient/fuzz-patient"},
    },
}


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    with live_hub(database_url, tmp_path_factory.mktemp("fuzz")) as hub:
        yield hub


def test_openapi_document_is_public_and_generated(live: LiveHub) -> None:
    root = live.base.removesuffix("/fhir")
    r = httpx.get(f"{root}/openapi.json", timeout=30)
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert "/fhir/Patient/{id}" in doc["paths"] and "/fhir/metadata" in doc["paths"]
    assert doc["paths"]["/fhir/metadata"]["get"]["security"] == []
    names = {p["name"] for p in doc["paths"]["/fhir/Patient"]["get"]["parameters"]}
    assert {"name", "identifier", "birthdate", "_count"} <= names
    metadata = httpx.get(f"{live.base}/metadata", timeout=30).json()
    types = {r["type"] for r in metadata["rest"][0]["resource"]}
    assert {p.split("/")[2] for p in doc["paths"] if p.count("/") >= 2 and p.split("/")[2][:1].isupper()} == types


def test_schemathesis_finds_no_server_errors(live: LiveHub, backend: str) -> None:
    root = live.base.removesuffix("/fhir")
    tokens = {"org": live.token(ORG), "client": live.token(CLIENT)}
    known: dict[str, str] = {}
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {tokens['org']}"}) as http:
        for rtype, body in SEED_RESOURCES.items():
            r = http.put(f"{live.base}/{rtype}/{body['id']}", json=body)
            assert r.status_code in (200, 201), r.text
            known[rtype] = str(body["id"])
    started = time.monotonic()
    scope = os.environ.get("HUB_FUZZ_TYPES", "core")  # core | deep | all
    types = {"core": CORE_TYPES, "deep": DEEP_TYPES, "all": None}[scope]
    report = run_schemathesis(
        root,
        tokens,
        examples=examples_per_operation(2),
        seed_value=SEED,
        types=types,
        known_ids=known,
    )
    elapsed = time.monotonic() - started
    print(
        f"\nschemathesis [{backend}, {scope}, seed {SEED}]: {report.operations} operations, {report.cases} cases, "
        f"{report.calls} calls in {elapsed:.1f} s; statuses {dict(sorted(report.by_status.items()))}"
    )
    assert report.cases >= 100
    assert not report.failures, "\n".join(report.failures)
