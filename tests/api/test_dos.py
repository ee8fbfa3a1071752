"""Denial of service: each limit is hit, answered 4xx within 1 s, while ``/metadata`` stays fast.

Every case runs a costly request while a probe asks for the CapabilityStatement over and over; the
hub serves both on one event loop, so a request that blocked the loop would show up as a slow probe.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import pytest_asyncio

from hub.settings import Settings
from tests.api.live import LiveHub, live_hub

ORG = "org:00099999:practitioner:900009999"

DEFAULTS = Settings()
JSON = {"Content-Type": "application/fhir+json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: The budgets the issue sets: the costly request answered within 1 s, the probe under 100 ms. On a
#: shared, loaded machine even an idle hub's probe can take longer, so by default the probe's budget
#: is 100 ms over the slowest of the probes taken just before (HUB_DOS_STRICT=1: 100 ms flat).
ANSWER_WITHIN = 1.0
PROBE_UNDER = 0.1
STRICT = os.environ.get("HUB_DOS_STRICT") == "1"
#: The live hub's resource size limit: small, so that a patch reaches it with a small body.
RESOURCE_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """A ``hub serve`` process: the costly request and the probe share its event loop, not the test's."""
    with live_hub(database_url, tmp_path_factory.mktemp("dos"), HUB_MAX_RESOURCE_BYTES=str(RESOURCE_BYTES)) as hub:
        yield hub


@pytest_asyncio.fixture(loop_scope="session")
async def client(live: LiveHub) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {live.token(ORG)}"}
    async with httpx.AsyncClient(base_url=live.base.removesuffix("/fhir"), headers=headers, timeout=30) as c:
        yield c


async def _under_load(client: httpx.AsyncClient, costly: Callable[[], Awaitable[httpx.Response]]) -> dict[str, Any]:
    """Run ``costly`` while probing ``/metadata``; the answer, its time and the slowest probe."""
    async with httpx.AsyncClient(base_url=client.base_url, timeout=30) as prober_client:
        baseline: list[float] = []
        for _ in range(8):  # warm (the statement is built once per base URL), and measure the quiet state
            started = time.perf_counter()
            assert (await prober_client.get("/fhir/metadata")).status_code == 200
            baseline.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)
        latencies: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                started = time.perf_counter()
                r = await prober_client.get("/fhir/metadata")
                latencies.append(time.perf_counter() - started)
                assert r.status_code == 200
                await asyncio.sleep(0.005)

        prober = asyncio.create_task(probe())
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        response = await costly()
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.02)
        done.set()
        await prober
    quiet = max(baseline[3:])
    return {
        "response": response,
        "elapsed": elapsed,
        "probe_max": max(latencies),
        "probes": len(latencies),
        "quiet_max": quiet,
        "budget": PROBE_UNDER if STRICT else PROBE_UNDER + quiet,
    }


#: Attempts per case: a load spike on a shared machine is transient, a blocked event loop is not.
ATTEMPTS = 3


async def _assert_limited(
    client: httpx.AsyncClient, costly: Callable[[], Awaitable[httpx.Response]], status: int, phrase: str
) -> None:
    """``costly`` is answered ``status`` naming the limit, within 1 s, while ``/metadata`` stays fast;
    the timing must hold in one of :data:`ATTEMPTS` tries (each try must be refused the same way)."""
    tries = []
    for _ in range(ATTEMPTS):
        result = await _under_load(client, costly)
        r = result["response"]
        assert r.status_code == status, r.text[:500]
        issue = r.json()["issue"][0]
        assert phrase in issue["diagnostics"], issue
        tries.append({k: v for k, v in result.items() if k != "response"})
        if result["elapsed"] < ANSWER_WITHIN and result["probe_max"] < result["budget"]:
            print(
                f" answered {r.status_code} in {result['elapsed'] * 1000:.0f} ms; /metadata max "
                f"{result['probe_max'] * 1000:.0f} ms over {result['probes']} probes "
                f"(quiet max {result['quiet_max'] * 1000:.0f} ms)"
            )
            return
    raise AssertionError(f"too slow in every try: {tries}")


async def _patient(client: httpx.AsyncClient) -> str:
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Jansen"}]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_json_patch_bomb(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    ops = orjson.dumps([{"op": "copy", "from": "/name", "path": "/name/-"} for _ in range(30)])
    await _assert_limited(
        client,
        lambda: client.patch(
            f"/fhir/Patient/{pid}", content=ops, headers={"Content-Type": "application/json-patch+json"}
        ),
        413,
        "limit",
    )


async def test_fhirpath_patch_growth(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    big = "y" * (RESOURCE_BYTES // 3)
    op = {
        "name": "operation",
        "part": [
            {"name": "type", "valueCode": "add"},
            {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "name"},
            {"name": "value", "valueHumanName": {"family": big}},
        ],
    }
    body = orjson.dumps({"resourceType": "Parameters", "parameter": [op] * 3})
    await _assert_limited(
        client, lambda: client.patch(f"/fhir/Patient/{pid}", content=body, headers=JSON), 413, "FHIRPath Patch"
    )


async def test_eight_megabytes_of_identifiers(client: httpx.AsyncClient) -> None:
    ids = [{"value": str(i)} for i in range(500_000)]
    body = orjson.dumps({"resourceType": "Patient", "identifier": ids})
    assert 7_000_000 < len(body) < DEFAULTS.max_body_bytes
    await _assert_limited(client, lambda: client.post("/fhir/Patient", content=body, headers=JSON), 400, "limit")


async def test_deep_nesting(client: httpx.AsyncClient) -> None:
    ext: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for i in range(150):
        ext = {"url": f"http://example.org/l{i}", "extension": [ext]}
    body = json.dumps({"resourceType": "Patient", "extension": [ext]})
    await _assert_limited(client, lambda: client.post("/fhir/Patient", content=body, headers=JSON), 400, "limit")


async def test_deep_xml(client: httpx.AsyncClient) -> None:
    inner = b'<valueString value="x"/>'
    for i in range(200):
        inner = b'<extension url="http://example.org/l%d">' % i + inner + b"</extension>"
    body = b'<Patient xmlns="http://hl7.org/fhir">' + inner + b"</Patient>"
    await _assert_limited(
        client,
        lambda: client.post("/fhir/Patient", content=body, headers={"Content-Type": "application/fhir+xml"}),
        400,
        "limit",
    )


@pytest.mark.parametrize(
    ("params", "phrase"),
    [
        ([("subject:Patient.organization.name", f"x{i}") for i in range(200)], "parameters"),
        ([("subject:Patient.organization" + ".partof" * 10 + ".name", "x")], "chains"),
        ([("_has:Observation:subject:" * 50 + "code", "x")], "_has"),
        ([("code", ",".join(f"c{i}" for i in range(2000)))], "values"),
        (
            [
                (
                    "_has:Observation:subject:_has:Provenance:target:agent",
                    ",".join(f"Practitioner/p{i}" for i in range(99)),
                )
            ]
            * 40,
            "terms",
        ),
    ],
    ids=["200-chained-params", "chain-depth", "has-depth", "2000-values", "weighted-terms"],
)
async def test_search_limits(client: httpx.AsyncClient, params: list[tuple[str, str]], phrase: str) -> None:
    body = urlencode(params)
    await _assert_limited(
        client, lambda: client.post("/fhir/Observation/_search", content=body, headers=FORM), 400, phrase
    )


async def test_body_too_large(client: httpx.AsyncClient) -> None:
    body = b'{"resourceType":"Patient","text":{"div":"' + b"x" * DEFAULTS.max_body_bytes + b'"}}'
    await _assert_limited(client, lambda: client.post("/fhir/Patient", content=body, headers=JSON), 413, "limit")


async def test_too_many_bundle_entries(client: httpx.AsyncClient) -> None:
    entry = {"request": {"method": "GET", "url": "Patient"}}
    entries = [entry] * (DEFAULTS.max_bundle_entries + 1)
    body = orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries})
    await _assert_limited(client, lambda: client.post("/fhir", content=body, headers=JSON), 400, "limit")
