"""Bulk Data ``$export`` as a Bulk Data client uses it: kick-off with ``Prefer: respond-async``, poll
the status URL (``X-Progress`` while running), read the manifest, download the NDJSON files with the
access token, and check every line is an R4 resource the caller may see. Also ``_type``, ``_since``,
Patient- and Group-level exports, cancellation, who may poll and download, and the audit record."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from tests.api.search_helpers import analyze, transaction

OTHER_ORG = "org:00088888:practitioner:900008888"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def _patient(pid: str, family: str = "Test") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family}], "gender": "female"}


def _obs(oid: str, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


async def _load(c: httpx.AsyncClient, resources: list[dict[str, Any]]) -> None:
    for start in range(0, len(resources), 1000):
        r = await c.post("/fhir", json=transaction(resources[start : start + 1000]))
        assert r.status_code == 200, r.text[:500]


async def _kick_off(c: httpx.AsyncClient, path: str, status: int = 202) -> str:
    r = await c.get(f"/fhir/{path}", headers=ASYNC)
    assert r.status_code == status, r.text
    if status != 202:
        return r.text
    location = r.headers["Content-Location"]
    assert location.startswith("http://hub.test/fhir/bulkstatus/")
    return location


async def _poll(c: httpx.AsyncClient, location: str, timeout: float = 120) -> tuple[dict[str, Any], list[str]]:
    """Poll like a client: until 200, collecting the X-Progress values seen."""
    progress: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        r = await c.get(location, headers={"Accept": "application/json"})
        if r.status_code == 200:
            manifest: dict[str, Any] = r.json()
            return manifest, progress
        assert r.status_code == 202, r.text
        progress.append(r.headers["X-Progress"])
        assert int(r.headers["Retry-After"]) >= 1
        assert time.monotonic() < deadline, "the export did not finish in time"
        await asyncio.sleep(0.05)


async def _download(c: httpx.AsyncClient, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    assert manifest["requiresAccessToken"] is True
    out: list[dict[str, Any]] = []
    for item in manifest["output"]:
        r = await c.get(item["url"], headers={"Accept": "application/fhir+ndjson"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/fhir+ndjson")
        lines = r.content.splitlines()
        assert len(lines) == item["count"]
        for line in lines:
            res = orjson.loads(line)
            assert res["resourceType"] == item["type"]
            assert isinstance(res["id"], str) and res["meta"]["versionId"]
            out.append(res)
    return out


def _refs(resources: list[dict[str, Any]]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


@pytest.fixture
async def two_orgs(client: httpx.AsyncClient, client_as: Any, hub_app: Any) -> dict[str, Any]:
    """Our organisation's data (p1, p2 and their Observations, a Group of p1) and another's (q1)."""
    ours = [_patient("p1"), _patient("p2"), _obs("o1", "p1"), _obs("o2", "p1"), _obs("o3", "p2")]
    ours.append(
        {
            "resourceType": "Group",
            "id": "g1",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": "Patient/p1"}}],
        }
    )
    ours.append({"resourceType": "Organization", "id": "org1", "name": "Zorg Alpha"})
    await _load(client, ours)
    other = client_as(OTHER_ORG)
    await _load(other, [_patient("q1"), _obs("oq1", "q1")])
    return {"other": other}


async def test_system_export_kick_off_poll_download(client: httpx.AsyncClient, two_orgs: dict[str, Any]) -> None:
    location = await _kick_off(client, "$export")
    manifest, _progress = await _poll(client, location)
    assert manifest["request"] == "http://hub.test/fhir/$export"
    assert manifest["transactionTime"] and manifest["error"] == []
    got = await _download(client, manifest)
    # exactly what this organisation may see: never the other organisation's client
    assert _refs(got) == {
        "Patient/p1",
        "Patient/p2",
        "Observation/o1",
        "Observation/o2",
        "Observation/o3",
        "Group/g1",
        "Organization/org1",
    }
    # and the other organisation's export holds only its own client's data (and what is public,
    # like the organisation register)
    other = two_orgs["other"]
    manifest, _ = await _poll(other, await _kick_off(other, "$export"))
    assert _refs(await _download(other, manifest)) == {"Patient/q1", "Observation/oq1", "Organization/org1"}


async def test_type_and_since(client: httpx.AsyncClient, two_orgs: dict[str, Any]) -> None:
    manifest, _ = await _poll(client, await _kick_off(client, "$export?_type=Observation,Group"))
    assert {o["type"] for o in manifest["output"]} == {"Observation", "Group"}
    assert _refs(await _download(client, manifest)) == {
        "Observation/o1",
        "Observation/o2",
        "Observation/o3",
        "Group/g1",
    }
    await asyncio.sleep(0.01)
    since = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    await asyncio.sleep(0.01)
    changed = _obs("o2", "p1") | {"status": "amended"}
    assert (await client.put("/fhir/Observation/o2", json=changed)).status_code == 200
    manifest, _ = await _poll(client, await _kick_off(client, f"$export?_since={since}"))
    got = await _download(client, manifest)
    assert _refs(got) == {"Observation/o2"} and got[0]["status"] == "amended"


async def test_patient_and_group_level(client: httpx.AsyncClient, two_orgs: dict[str, Any]) -> None:
    manifest, _ = await _poll(client, await _kick_off(client, "Patient/$export"))
    # the Patient compartments (a Group with a Patient member is in it, R4's CompartmentDefinition),
    # not the Organization
    assert _refs(await _download(client, manifest)) == {
        "Patient/p1",
        "Patient/p2",
        "Observation/o1",
        "Observation/o2",
        "Observation/o3",
        "Group/g1",
    }
    manifest, _ = await _poll(client, await _kick_off(client, "Group/g1/$export"))
    assert _refs(await _download(client, manifest)) == {"Patient/p1", "Observation/o1", "Observation/o2", "Group/g1"}
    # a Group the caller cannot see is unknown to it
    await _kick_off(two_orgs["other"], "Group/g1/$export", status=404)
    await _kick_off(client, "Group/nope/$export", status=404)


async def test_kick_off_is_checked(client: httpx.AsyncClient, two_orgs: dict[str, Any]) -> None:
    r = await client.get("/fhir/$export")  # no Prefer: respond-async
    assert r.status_code == 400 and "respond-async" in r.text
    assert "_outputFormat" in await _kick_off(client, "$export?_outputFormat=text/csv", status=400)
    assert "Nope" in await _kick_off(client, "$export?_type=Nope", status=400)
    assert "_since" in await _kick_off(client, "$export?_since=yesterday", status=400)
    assert "_typeFilter" in await _kick_off(client, "$export?_typeFilter=Observation%3Fstatus%3Dfinal", status=400)
    await _kick_off(client, "Observation/$export", status=404)
    await _kick_off(client, "$export?_outputFormat=application/fhir%2Bndjson")
    anonymous = httpx.AsyncClient(transport=client._transport, base_url="http://hub.test")
    assert (await anonymous.get("/fhir/$export", headers=ASYNC)).status_code == 401


async def test_only_the_requester_polls_downloads_and_cancels(
    client: httpx.AsyncClient, two_orgs: dict[str, Any], hub_app: Any
) -> None:
    location = await _kick_off(client, "$export")
    manifest, _ = await _poll(client, location)
    other = two_orgs["other"]
    assert (await other.get(location)).status_code == 404
    assert (await other.delete(location)).status_code == 404
    url = manifest["output"][0]["url"]
    assert (await other.get(url)).status_code == 404
    anonymous = httpx.AsyncClient(transport=client._transport, base_url="http://hub.test")
    assert (await anonymous.get(url)).status_code == 401
    assert (await anonymous.get(location)).status_code == 401
    # a client deletes a finished export when it has its files; then it is gone
    assert (await client.delete(location)).status_code == 202
    assert (await client.get(location)).status_code == 404
    assert (await client.get(url)).status_code == 404


async def test_export_is_audited_once_per_client(
    client: httpx.AsyncClient, two_orgs: dict[str, Any], hub_app: Any
) -> None:
    db = hub_app.state.services.repo.db
    async with db.read() as conn:
        before = (await conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_log"))).scalar_one()
    manifest, _ = await _poll(client, await _kick_off(client, "$export"))
    async with db.read() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT p.patient_id FROM audit_log l JOIN audit_patient p ON p.seq = l.seq "
                    "WHERE l.event LIKE '%$export%' AND l.interaction = 'operation' AND l.seq > :before"
                ),
                {"before": before},
            )
        ).all()
    # one disclosure record per client whose data left: p1 and p2, never the other organisation's q1
    assert sorted(r[0] for r in rows) == ["p1", "p2"]


async def _clone(hub_app: Any, copies: int) -> None:
    """Copies of every resource row (new ids, same author) straight in SQL: loading 10k resources
    through the API takes minutes on a busy machine, and the export reads only these rows."""
    db = hub_app.state.services.repo.db
    new_id = "o.res_id || '-k' || CAST(:k AS TEXT)"
    content = (
        f"json_set(o.content, '$.id', {new_id})"
        if db.is_sqlite
        else f"jsonb_set(o.content, '{{id}}', to_jsonb({new_id}))"
    )
    async with db.write() as conn:
        for k in range(1, copies + 1):
            await conn.execute(
                text(
                    "INSERT INTO resource (res_type, res_id, version, last_updated, deleted, category, content, "  # noqa: S608
                    "client_key) "
                    f"SELECT o.res_type, {new_id}, o.version, o.last_updated, o.deleted, o.category, {content}, "
                    "o.client_key "
                    "FROM resource o WHERE o.res_id LIKE 'seed%' AND o.res_id NOT LIKE '%-k%'"
                ),
                {"k": str(k)},
            )
            await conn.execute(
                text(
                    "INSERT INTO resource_author (pid, ura, client_key) SELECT n.pid, a.ura, n.client_key "  # noqa: S608
                    "FROM resource o "
                    "JOIN resource_author a ON a.pid = o.pid "
                    f"JOIN resource n ON n.res_type = o.res_type AND n.res_id = {new_id} "
                    "WHERE o.res_id LIKE 'seed%' AND o.res_id NOT LIKE '%-k%'"
                ),
                {"k": str(k)},
            )


async def test_progress_and_ten_thousand_resources(client: httpx.AsyncClient, client_as: Any, hub_app: Any) -> None:
    # 100 through the API (so the author facts are the hub's own), then 99 copies of each
    await _load(
        client, [_patient(f"seedp{i}") for i in range(10)] + [_obs(f"seedo{i}", f"seedp{i % 10}") for i in range(90)]
    )
    # another organisation's (and their copies) must stay out of the export
    await _load(client_as(OTHER_ORG), [_patient("seedxp")] + [_obs(f"seedx{i}", "seedxp") for i in range(5)])
    await _clone(hub_app, 99)
    await analyze(hub_app)
    started = time.monotonic()
    location = await _kick_off(client, "$export")
    manifest, progress = await _poll(client, location, timeout=120)
    elapsed = time.monotonic() - started
    assert progress, "the status was never in progress"
    assert all(re.fullmatch(r"(queued|in-progress): (counting|\d+ of \d+ resources \(\d+%\))", p) for p in progress)
    got = await _download(client, manifest)
    assert len(got) == 10_000 and len(_refs(got)) == 10_000
    assert not any(r["id"].startswith("seedx") for r in got)
    print(f"exported 10k resources in {elapsed:.1f}s")
    assert elapsed < 60, f"exporting 10k resources took {elapsed:.1f}s"


async def test_an_unfinished_export_is_picked_up_after_a_restart(
    client: httpx.AsyncClient, two_orgs: dict[str, Any], hub_app: Any
) -> None:
    from hub.bulk.jobs import ExportManager
    from hub.bulk.tables import export_file, export_job
    from hub.fhir.instants import now_us

    location = await _kick_off(client, "$export?_type=Observation")
    job_id = location.rsplit("/", 1)[1]
    services = hub_app.state.services
    await services.extras["exports"].wait(job_id)
    # as if the process had stopped half way: the job is still in progress and its files are gone
    async with services.repo.db.write() as conn:
        await conn.execute(export_file.delete().where(export_file.c.job_id == job_id))
        await conn.execute(
            export_job.update().where(export_job.c.job_id == job_id).values(status="in-progress", heartbeat=now_us())
        )
    assert (await client.get(location)).status_code == 202
    # another worker does not take over a job whose runner still reports ...
    other_worker = ExportManager(services, services.extras["exports"].directory)
    await other_worker.start()
    await other_worker.wait(job_id)
    assert (await client.get(location)).status_code == 202
    # ... but does once it has gone quiet (the process stopped)
    async with services.repo.db.write() as conn:
        await conn.execute(export_job.update().where(export_job.c.job_id == job_id).values(heartbeat=0))
    restarted = ExportManager(services, services.extras["exports"].directory)
    await restarted.start()  # the caller's access decision is rebuilt from the job's facts
    await restarted.wait(job_id)
    manifest, _ = await _poll(client, location)
    assert _refs(await _download(client, manifest)) == {"Observation/o1", "Observation/o2", "Observation/o3"}
    await restarted.stop()
