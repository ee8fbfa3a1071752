"""The eOverdracht receiver role against a live hub (SQLite and PostgreSQL) and the fake STU3 sender.

The sender is ``tests/adapters/eoverdracht_counterpart.py`` in its own process serving the Kwalificatie
1.1b example transfer; the receiving organisation works in the hub with its own token (its nursing system
on the hub), and the adapter mirrors what it does back to the sender.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.common.client import HubClient, RetryPolicy
from adapters.wijkverpleging.convert import ALTERNATIVE_DATE, NURSING_HANDOFF
from adapters.wijkverpleging.receiver import EXCHANGE, SOURCE, Receiver
from adapters.wijkverpleging.sender_api import CounterpartUnavailable, TransferError, references
from adapters.wijkverpleging.state import State
from tests.adapters.eoverdracht_env import (
    REPO,
    TASK_ID,
    WIJKZORG_URA,
    WijkWorld,
    counterpart,
    repaired_transfer,
    wijk_world_fixture,  # noqa: F401 - the live hub fixture
)
from tests.api.live import free_port

HANDOFF_ID = "eOverdracht-NursingHandoff-Adults-eov-cert-1.1b-01"
QUICK = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2)


def receiver_for(hub: HubClient, http: httpx.AsyncClient, tmp_path: Path) -> Receiver:
    return Receiver(hub, http, State(tmp_path / "state.sqlite"), WIJKZORG_URA, QUICK)


async def set_hub_status(world: WijkWorld, task_id: str, status: str, **extra: Any) -> None:
    """The receiving organisation changes the Task in the hub (its own system, its own token)."""
    async with world.as_org() as org:
        task = (await org.get(f"/Task/{task_id}")).json()
        task.update(status=status, **extra)
        r = await org.put(f"/Task/{task_id}", json=task, headers={"Content-Type": "application/fhir+json"})
        assert r.status_code == 200, r.text


async def sender_history(sender_admin: str, task_id: str) -> list[str]:
    async with httpx.AsyncClient() as http:
        return list((await http.get(f"{sender_admin}/task-history/{task_id}")).json())


def count_reachable(task: dict[str, Any], res_type: str) -> int:
    """How many resources of ``res_type`` the example transfer reaches from ``task``'s references."""
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in repaired_transfer()}
    seen: set[str] = set()
    queue = references(task)
    while queue:
        ref = queue.pop()
        if ref not in seen:
            seen.add(ref)
            queue += references(by_ref[ref])
    return sum(1 for ref in seen if ref.startswith(f"{res_type}/"))


async def sender_down(sender_admin: str, requests: int, after: int = 0) -> None:
    """The sender answers ``requests`` FHIR requests after the next ``after`` with 503 (down for the
    adapter's retries)."""
    async with httpx.AsyncClient() as http:
        body = {"count": requests, "after": after}
        assert (await http.post(f"{sender_admin}/fail", json=body)).status_code == 200


async def test_full_handover_from_an_stu3_sender(wijk_world: WijkWorld, tmp_path: Path) -> None:
    """The whole eOverdracht from an STU3 sender to the hub's receiving organisation: every state the
    receiver sets in the hub reaches the sender once; the sender down is retried; a pull that fails
    halfway leaves nothing of it in the hub."""
    with counterpart(repaired_transfer("requested"), tmp_path) as sender:
        async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
            receiver = receiver_for(hub, http, tmp_path)
            # 1. the sender notifies with the advance notice: an imported overdracht of the receiver
            task = (await http.get(f"{sender.fhir}/Task/{TASK_ID}")).json()
            stored = await receiver.receive(sender.fhir, task)
            hub_task = await hub.read("Task", stored.hub_task_id)
            assert hub_task["status"] == "requested"
            assert hub_task["for"]["reference"] == f"Patient/{wijk_world.patient_id}"
            assert {"system": EXCHANGE, "code": "imported"} in [
                {k: t[k] for k in ("system", "code")} for t in hub_task["meta"]["tag"]
            ]
            # the sending organisation (AGB-Z of the example's hospital) by identifier only: no hub party
            assert hub_task["requester"]["identifier"] == {
                "system": "http://fhir.nl/fhir/NamingSystem/agb-z",
                "value": "06757677",
            }
            assert "reference" not in hub_task["requester"]
            notice = await hub.read(*hub_task["input"][0]["valueReference"]["reference"].split("/"))
            assert notice["identifier"] == {
                "system": SOURCE,
                "value": f"{sender.fhir}/Composition/eOverdracht-AdvanceNotice-eov-cert-1.1b-01",
            }
            conditions = await hub.search("Condition", {"patient": f"Patient/{wijk_world.patient_id}"})
            assert len(conditions) == count_reachable(task, "Condition")
            # 2. received, then accepted, in the hub; each mirrored once
            await set_hub_status(wijk_world, stored.hub_task_id, "received")
            assert await receiver.mirror() == [(TASK_ID, "received")]
            await set_hub_status(wijk_world, stored.hub_task_id, "accepted")
            await sender_down(sender.admin, 10)  # down for every retry of this round
            assert await receiver.mirror() == []
            assert receiver.state.get(sender.fhir, TASK_ID).mirrored == "received"  # type: ignore[union-attr]
            await sender_down(sender.admin, 0)
            assert await receiver.mirror() == [(TASK_ID, "accepted")]  # retried in the next round
            assert await receiver.mirror() == []  # nothing new: nothing sent
            assert await sender_history(sender.admin, TASK_ID) == ["received", "accepted"]
            # 3. the sender adds the nursing handoff and notifies again
            theirs = (await http.get(f"{sender.fhir}/Task/{TASK_ID}")).json()
            theirs["input"].append(
                {
                    "type": {"coding": [{**NURSING_HANDOFF, "display": "verslag van overdracht"}]},
                    "valueReference": {"reference": f"Composition/{HANDOFF_ID}"},
                }
            )
            r = await http.put(f"{sender.fhir}/Task/{TASK_ID}", json=theirs)
            assert r.status_code == 200, r.text
            # ... first while the sender goes down halfway through the pull: nothing of it in the hub
            before = await hub.read("Task", stored.hub_task_id)
            await sender_down(sender.admin, 1000, after=2)
            with pytest.raises(CounterpartUnavailable):
                await receiver.receive(sender.fhir, theirs)
            after = await hub.read("Task", stored.hub_task_id)
            assert after["meta"]["versionId"] == before["meta"]["versionId"]
            found = await hub.search("Composition", {"identifier": f"{SOURCE}|{sender.fhir}/Composition/{HANDOFF_ID}"})
            assert found == []
            await sender_down(sender.admin, 0)
            again = await receiver.receive(sender.fhir, theirs)
            assert again.hub_task_id == stored.hub_task_id  # the same Task, updated
            hub_task = await hub.read("Task", stored.hub_task_id)
            assert hub_task["status"] == "accepted"  # the sender's copy does not overrule the receiver
            assert [i["type"]["coding"][0]["code"] for i in hub_task["input"]] == ["57830-2", "371535009"]
            handoff = await hub.read(*hub_task["input"][1]["valueReference"]["reference"].split("/"))
            assert [s["code"]["coding"][0]["code"] for s in handoff["section"]] == [
                "405624007",
                "109481000146101",
                "371524004",
                "773130005",
                "5531000179105",
            ]
            conditions = await hub.search("Condition", {"patient": f"Patient/{wijk_world.patient_id}"})
            assert len(conditions) == count_reachable(theirs, "Condition")
            # 4. admission: in-progress, then care taken over: completed; each mirrored
            await set_hub_status(wijk_world, stored.hub_task_id, "in-progress")
            assert await receiver.mirror() == [(TASK_ID, "in-progress")]
            await set_hub_status(wijk_world, stored.hub_task_id, "completed")
            assert await receiver.mirror() == [(TASK_ID, "completed")]
            assert await sender_history(sender.admin, TASK_ID) == [
                "received",
                "accepted",
                "accepted",
                "in-progress",
                "completed",
            ]  # (the second 'accepted' is the sender's own update attaching the handoff)
            final = (await http.get(f"{sender.fhir}/Task/{TASK_ID}")).json()
            assert final["status"] == "completed" and final["owner"] == task["owner"]
            receiver.state.close()


async def test_rejection_with_reason_is_mirrored(wijk_world: WijkWorld, tmp_path: Path) -> None:
    data = repaired_transfer("requested")
    for r in data:
        if r["resourceType"] == "Task":
            r["id"] = "eov-reject-01"
    with counterpart(data, tmp_path) as sender:
        async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
            receiver = receiver_for(hub, http, tmp_path)
            task = (await http.get(f"{sender.fhir}/Task/eov-reject-01")).json()
            stored = await receiver.receive(sender.fhir, task)
            reason = {"text": "Geen capaciteit in de wijk"}
            await set_hub_status(wijk_world, stored.hub_task_id, "rejected", statusReason=reason)
            assert await receiver.mirror() == [("eov-reject-01", "rejected")]
            theirs = (await http.get(f"{sender.fhir}/Task/eov-reject-01")).json()
            assert theirs["status"] == "rejected" and theirs["statusReason"] == reason
            receiver.state.close()


async def test_a_sender_that_is_down_is_retried(wijk_world: WijkWorld, tmp_path: Path) -> None:
    data = repaired_transfer("requested")
    for r in data:
        if r["resourceType"] == "Task":
            r["id"] = "eov-down-01"
    port = free_port()
    # briefly failing (503 twice): the pull is retried and succeeds
    with counterpart(data, tmp_path, port=port, fail_first=2) as sender:
        async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
            receiver = receiver_for(hub, http, tmp_path)
            task = next(r for r in data if r["resourceType"] == "Task")
            stored = await receiver.receive(sender.fhir, task)
            fhir_base = sender.fhir
    # down altogether: the accepted state stays pending ...
    async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
        receiver = receiver_for(hub, http, tmp_path)
        await set_hub_status(wijk_world, stored.hub_task_id, "accepted")
        assert await receiver.mirror() == []
        assert receiver.state.get(fhir_base, "eov-down-01").mirrored == "requested"  # type: ignore[union-attr]
        # ... and is delivered once the sender is back
        with counterpart(data, tmp_path, port=port) as sender:
            assert await receiver.mirror() == [("eov-down-01", "accepted")]
            assert await sender_history(sender.admin, "eov-down-01") == ["accepted"]
        receiver.state.close()


async def test_missing_referenced_entries_park_the_transfer_and_write_nothing(
    wijk_world: WijkWorld, tmp_path: Path
) -> None:
    data = repaired_transfer("requested")
    task = next(r for r in data if r["resourceType"] == "Task")
    task["id"] = "eov-missing-01"
    task["input"].append(
        {"type": {"coding": [NURSING_HANDOFF]}, "valueReference": {"reference": f"Composition/{HANDOFF_ID}"}}
    )
    handoff = next(r for r in data if r["id"] == HANDOFF_ID)
    missing = next(ref for ref in references(handoff) if ref.startswith("Condition/"))
    served = [r for r in data if f"{r['resourceType']}/{r['id']}" != missing]  # the sender lacks one entry
    with counterpart(served, tmp_path) as sender:
        async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
            receiver = receiver_for(hub, http, tmp_path)
            with pytest.raises(TransferError) as caught:
                await receiver.receive(sender.fhir, task)
            assert caught.value.offending == missing
            [(base, task_id, offending, _reason)] = receiver.state.parked()
            assert (base, task_id, offending) == (sender.fhir, "eov-missing-01", missing)
            for ref in (
                "Task/eov-missing-01",
                f"Composition/{HANDOFF_ID}",
                "Composition/eOverdracht-AdvanceNotice-eov-cert-1.1b-01",
            ):
                found = await hub.search(ref.split("/")[0], {"identifier": f"{SOURCE}|{sender.fhir}/{ref}"})
                assert found == [], ref
            assert receiver.state.all() == []
            receiver.state.close()


async def test_an_invalid_resource_from_the_sender_is_refused(wijk_world: WijkWorld, tmp_path: Path) -> None:
    data = repaired_transfer("requested")
    for r in data:
        if r["resourceType"] == "Task":
            r["id"] = "eov-invalid-01"
        if r["id"] == "eOverdracht-AdvanceNotice-eov-cert-1.1b-01":
            r["date"] = "gisteren"  # not a FHIR dateTime
    with counterpart(data, tmp_path) as sender:
        async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
            receiver = receiver_for(hub, http, tmp_path)
            task = next(r for r in data if r["resourceType"] == "Task")
            with pytest.raises(TransferError) as caught:
                await receiver.receive(sender.fhir, task)
            assert caught.value.offending == "Composition/eOverdracht-AdvanceNotice-eov-cert-1.1b-01"
            assert await hub.search("Task", {"identifier": f"{SOURCE}|{sender.fhir}/Task/eov-invalid-01"}) == []
            receiver.state.close()


def test_a_sender_notifies_the_adapter_process(wijk_world: WijkWorld, tmp_path: Path) -> None:
    """``adapter-wijkverpleging serve`` as its own process; the sender POSTs its Task to the endpoint."""
    data = repaired_transfer("requested")
    for r in data:
        if r["resourceType"] == "Task":
            r["id"] = "eov-notify-01"
    with counterpart(data, tmp_path) as sender:
        port = free_port()
        config = tmp_path / "adapter-wijkverpleging.json"
        config.write_text(
            json.dumps(
                {
                    "hub_base": wijk_world.hub.base,
                    "client_id": wijk_world.adapter.client_id,
                    "private_key": str(wijk_world.adapter.key_file),
                    "state": str(tmp_path / "adapter-state.sqlite"),
                    "ura": WIJKZORG_URA,
                    "listen": {"host": "127.0.0.1", "port": port},
                    "mirror_interval": 0.5,
                    "senders": [{"id": "ziekenhuis-west", "fhir_base": sender.fhir}],
                }
            ),
            "utf-8",
        )
        cli = Path(sys.executable).parent / "adapter-wijkverpleging"
        proc = subprocess.Popen(
            [str(cli), "serve", "--config", str(config)],
            cwd=REPO,  # noqa: S603
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            endpoint = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{endpoint}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "adapter did not start"
                time.sleep(0.1)
            unknown = httpx.post(f"{endpoint}/senders/nobody/Task", json={"resourceType": "Task", "id": "x"})
            assert unknown.status_code == 404
            notified = httpx.post(
                f"{sender.admin}/notify",
                timeout=60,
                json={
                    "task": "eov-notify-01",
                    "to": f"{endpoint}/senders/ziekenhuis-west/Task",
                    "sender_base": sender.fhir,
                },
            )
            assert notified.json()["status"] == 201, notified.text
            hub_task_id = notified.json()["body"]["id"]
            token = wijk_world.hub.token(f"org:{WIJKZORG_URA}")
            with httpx.Client(base_url=wijk_world.hub.base, headers={"Authorization": f"Bearer {token}"}) as org:
                task = org.get(f"/Task/{hub_task_id}").json()
                task["status"] = "accepted"
                assert org.put(f"/Task/{hub_task_id}", json=task).status_code == 200
            deadline = time.monotonic() + 20
            while httpx.get(f"{sender.admin}/task-history/eov-notify-01").json() != ["accepted"]:
                assert time.monotonic() < deadline, "the accepted state did not reach the sender"
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def test_on_hold_with_an_alternative_date_and_the_senders_cancel(wijk_world: WijkWorld, tmp_path: Path) -> None:
    data = repaired_transfer("requested")
    for r in data:
        if r["resourceType"] == "Task":
            r["id"] = "eov-onhold-01"
    with counterpart(data, tmp_path) as sender:
        async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
            receiver = receiver_for(hub, http, tmp_path)
            task = (await http.get(f"{sender.fhir}/Task/eov-onhold-01")).json()
            stored = await receiver.receive(sender.fhir, task)
            # the receiver cannot start on the date asked and proposes another (eOverdracht ON-HOLD-ALTDATE)
            alternative = [{"type": {"coding": [dict(ALTERNATIVE_DATE)]}, "valueDateTime": "2026-01-02"}]
            await set_hub_status(
                wijk_world,
                stored.hub_task_id,
                "on-hold",
                output=alternative,
                restriction={"period": {"start": "2026-01-02"}},
            )
            assert await receiver.mirror() == [("eov-onhold-01", "on-hold")]
            theirs = (await http.get(f"{sender.fhir}/Task/eov-onhold-01")).json()
            assert theirs["status"] == "on-hold" and theirs["output"] == alternative
            # the sender cancels the handover: the hub Task follows
            theirs["status"] = "cancelled"
            assert (await http.put(f"{sender.fhir}/Task/eov-onhold-01", json=theirs)).status_code == 200
            await receiver.receive(sender.fhir, theirs)
            assert (await hub.read("Task", stored.hub_task_id))["status"] == "cancelled"
            assert await receiver.mirror() == []  # the sender's own state is not sent back to it
            receiver.state.close()
