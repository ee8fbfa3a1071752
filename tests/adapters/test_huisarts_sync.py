"""The huisarts adapter against a live hub and the fake GP system (separate processes, real HTTP), on
SQLite and PostgreSQL: first sync, incremental sync, nothing new, corrections and removals at the source,
faults of the GP system, kill -9 mid-sync, and the data's visibility under the client's consent."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.common.client import HubClient
from tests.adapters.gp_system.fixtures import bsn_for
from tests.adapters.huisarts_env import GP_URA, HuisartsWorld, build_network, fake_gp
from tests.adapters.registration import register_system_app
from tests.api.live import live_hub
from tests.conftest import throwaway_database

TYPES = ("Condition", "EpisodeOfCare", "Flag", "AllergyIntolerance", "MedicationRequest", "Observation", "Consent")


def expected_summary(clients: int) -> dict[str, int]:
    """What the network summary holds for the fake practice, counted from how its records were made
    (not from the adapter's filter): problems and episodes of the active clients, alerts, allergies,
    one prescription each, blood pressure + weight (+ eGFR for every second client) of the last
    months, the three SOEP lines tagged for sharing, and the treatment directives."""
    out = dict.fromkeys(TYPES, 0)
    for i in range(clients):
        active = i % 5 != 4
        out["Condition"] += active
        out["EpisodeOfCare"] += active
        out["Flag"] += i % 3 == 0
        out["AllergyIntolerance"] += i % 4 == 0
        out["MedicationRequest"] += 1
        out["Observation"] += 2 + (i % 2 == 0) + 3
        out["Consent"] += i % 6 == 0
    return out


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    with throwaway_database(backend, tmp_path) as url:
        yield url


def world_for(database: str, work: Path, version: str, clients: int, **faults: int) -> Any:
    """Context manager stack: live hub + fake GP + the adapter registered + the network built."""
    from contextlib import ExitStack

    stack = ExitStack()
    hub = stack.enter_context(live_hub(database, work))
    gp = stack.enter_context(fake_gp(version, clients, **faults))
    adapter = register_system_app(hub.env, work, "his-de-linde", GP_URA)
    patients = build_network(hub, clients)
    return stack, HuisartsWorld(hub, gp, adapter, work, patients, version)


async def counts(hub: HubClient) -> dict[str, int]:
    out = {}
    for kind in TYPES:
        system = f"urn:zorgnet:huisarts:de-linde:{kind}"
        bundle = (await hub.request("GET", kind, params=[("identifier", f"{system}|"), ("_summary", "count")])).json()
        out[kind] = int(bundle["total"])
    return out


async def by_source(hub: HubClient, kind: str, source_id: str) -> dict[str, Any]:
    found = await hub.search(kind, [("identifier", f"urn:zorgnet:huisarts:de-linde:{kind}|{source_id}")])
    assert len(found) == 1, (kind, source_id, found)
    return found[0]


@pytest.mark.parametrize("version", ["stu3", "r4"])
def test_first_incremental_and_corrections(database: str, backend: str, tmp_path: Path, version: str) -> None:
    # 200 clients where it matters most (STU3, the production database); fewer elsewhere, same checks
    clients = 200 if (version, backend) == ("stu3", "postgresql") else 30
    stack, world = world_for(database, tmp_path, version, clients)
    with stack:
        asyncio.run(_first_incremental_and_corrections(world, tmp_path, clients))


async def _first_incremental_and_corrections(world: HuisartsWorld, tmp_path: Path, clients: int) -> None:
    state = tmp_path / "state.sqlite"
    async with world.hub_client() as hub:
        syncer, gp, sync_state = world.syncer(hub, state)
        try:
            first = await syncer.run()
            want = expected_summary(clients)
            assert len(first.clients) == clients and first.as_json()["parked"] == []
            assert first.written == sum(want.values())
            assert await counts(hub) == want
            provenance = (await hub.request("GET", "Provenance", params={"_summary": "count"})).json()["total"]
            assert provenance == first.written

            # every resource is about its own client, in the hub's profiles, as the GP's organisation wrote it
            c0 = world.patients[bsn_for(0)]
            condition = await by_source(hub, "Condition", "p0000-cond")
            assert condition["subject"] == {"reference": f"Patient/{c0}"}
            assert condition["meta"]["profile"] == ["http://nictiz.nl/fhir/StructureDefinition/nl-core-Problem"]
            assert condition["meta"]["source"] == f"{world.gp.base}/Condition/p0000-cond"
            outcome = (await hub.request("POST", "Condition/$validate", json=condition)).json()
            assert [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")] == []

            again = await syncer.run()
            assert again.written == 0 and again.fetched == 0

            # corrections at the source: a problem resolved, a measurement entered in error
            source = world.gp.read("Condition", "p0000-cond")
            if world.version == "stu3":
                source["clinicalStatus"] = "resolved"
            else:
                source["clinicalStatus"] = {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}
                    ]
                }
            world.gp.put(source)
            weight = world.gp.read("Observation", "p0001-weight")
            world.gp.put({**weight, "status": "entered-in-error"})
            corrected = await syncer.run()
            assert corrected.written == 2 and corrected.fetched == 2
            condition = await by_source(hub, "Condition", "p0000-cond")
            assert condition["clinicalStatus"]["coding"][0]["code"] == "resolved"
            assert condition["meta"]["versionId"] == "2"
            assert (await by_source(hub, "Observation", "p0001-weight"))["status"] == "entered-in-error"
            traces = await hub.search("Provenance", [("target", f"Condition/{condition['id']}")])
            assert sorted(p["entity"][0]["what"]["identifier"]["value"] for p in traces) == [
                "Condition/p0000-cond/_history/1",
                "Condition/p0000-cond/_history/2",
            ]

            # removed at the source: a full run finds it and marks it entered-in-error
            world.gp.delete("Flag", "p0003-alert")
            full = await syncer.run(full=True)
            assert sum(c.removed for c in full.clients) == 1 and full.written == 1
            assert (await by_source(hub, "Flag", "p0003-alert"))["status"] == "entered-in-error"
            assert (await syncer.run()).written == 0
        finally:
            await gp.aclose()
            sync_state.close()


def test_visibility_under_consent_and_bad_records_parked(database: str, tmp_path: Path) -> None:
    stack, world = world_for(database, tmp_path, "stu3", 3)
    with stack:

        async def run() -> None:
            async with world.hub_client() as hub:
                syncer, gp, state = world.syncer(hub, tmp_path / "state.sqlite")
                await syncer.run()
                await gp.aclose()
                state.close()

        asyncio.run(run())
        c0 = world.patients[bsn_for(0)]

        def seen(spec: str) -> int:
            token = world.hub.token(spec)
            r = httpx.get(
                f"{world.hub.base}/Condition",
                params={"subject": f"Patient/{c0}"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            return int(r.json()["total"])

        assert seen(f"client:{bsn_for(0)}") == 1  # the client sees their GP's problem list

        # a record the GP system sends that is not valid STU3 is parked with its id; the rest goes in
        broken = world.gp.read("Condition", "p0001-cond")
        world.gp.put({**broken, "clinicalStatus": {"coding": [{"code": "active"}]}})
        weight = world.gp.read("Observation", "p0001-weight")
        world.gp.put({**weight, "valueQuantity": {**weight["valueQuantity"], "value": 77.5}})

        async def again() -> None:
            async with world.hub_client() as hub:
                syncer, gp, state = world.syncer(hub, tmp_path / "state.sqlite")
                report = await syncer.run()
                await gp.aclose()
                state.close()
                assert report.as_json()["parked"] == ["Condition/p0001-cond"]
                assert report.written == 1
                assert (await by_source(hub, "Observation", "p0001-weight"))["valueQuantity"]["value"] == 77.5
                assert (await by_source(hub, "Condition", "p0001-cond"))["meta"]["versionId"] == "1"

        asyncio.run(again())
        assert seen("org:00012345") == 1  # the practice, as author
        assert seen("org:00099999") == 0  # a stranger organisation does not


def test_a_flaky_and_slow_gp_system_is_retried_to_the_same_result(database: str, tmp_path: Path) -> None:
    stack, world = world_for(database, tmp_path, "stu3", 12, fail_every=3, slow_ms=300)
    with stack:

        async def run() -> None:
            async with world.hub_client() as hub:
                syncer, gp, state = world.syncer(hub, tmp_path / "state.sqlite")
                try:
                    report = await syncer.run()
                    assert report.written == sum(expected_summary(12).values())
                    assert await counts(hub) == expected_summary(12)
                finally:
                    await gp.aclose()
                    state.close()

        asyncio.run(run())
        log = httpx.get(f"{world.gp.admin}/log", timeout=10).json()
        assert len(log) >= 12 * 8  # every client's queries, including the ones answered 500 and retried


def test_kill_9_mid_sync_then_resume(database: str, tmp_path: Path) -> None:
    clients = 24
    stack, world = world_for(database, tmp_path, "stu3", clients, delay_ms=120)
    with stack:
        state = tmp_path / "state.sqlite"
        config = world.config_file(state)
        proc = subprocess.Popen(  # noqa: S603 - the adapter's own command
            world.adapter_command(config),
            env=world.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        marks = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if state.exists():
                with sqlite3.connect(state) as db:
                    try:
                        marks = db.execute("SELECT count(*) FROM mark").fetchone()[0]
                    except sqlite3.OperationalError:
                        marks = 0
            if marks >= 4:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the sync finished before it could be killed"
        assert 4 <= marks < clients
        world.gp.delay(0)  # the delay was there to land the kill mid-sync; the rest need not wait

        done = subprocess.run(  # noqa: S603 - the adapter's own command
            world.adapter_command(config),
            env=world.env(),
            capture_output=True,
            text=True,  # noqa: S603
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]

        async def check() -> None:
            async with world.hub_client() as hub:
                assert await counts(hub) == expected_summary(clients)  # nothing missing, nothing twice

        asyncio.run(check())
        again = subprocess.run(  # noqa: S603 - the adapter's own command
            world.adapter_command(config),
            env=world.env(),
            capture_output=True,
            text=True,  # noqa: S603
            timeout=300,
        )
        assert '"written": 0' in again.stdout
