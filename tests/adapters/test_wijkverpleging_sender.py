"""The eOverdracht sender role: a handover in the hub served as STU3 to the fake receiver (own process).

The hub holds an overdracht Task of the nursing organisation (requester) to another organisation (owner)
with its advance notice and nursing handoff; ``adapter-wijkverpleging announce`` notifies the STU3
receiver, which pulls everything through the adapter's STU3 facade (checked against the STU3 models)
and accepts; the acceptance lands on the hub Task.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from adapters.common.client import RetryPolicy
from adapters.wijkverpleging.convert import NURSING_HANDOFF
from adapters.wijkverpleging.profiles import ProfileCheck
from adapters.wijkverpleging.receiver import Receiver
from adapters.wijkverpleging.sender_api import references
from adapters.wijkverpleging.state import State
from tests.adapters.eoverdracht_env import (
    REPO,
    WIJKZORG_URA,
    WijkWorld,
    counterpart,
    repaired_transfer,
    wijk_world_fixture,  # noqa: F401 - the live hub fixture
)
from tests.api.live import free_port

HANDOFF_ID = "eOverdracht-NursingHandoff-Adults-eov-cert-1.1b-01"
NL_CORE_PATIENT = "http://fhir.nl/fhir/StructureDefinition/nl-core-patient"
TOKEN = "receiver-token-0123456789abcdef"


#: The receiving organisation of the example transfer (WijZorgen Honselerdijk), outside the hub.
RECEIVER_URA = "75191919"
EXCHANGE = "https://zorgnet-hub.nl/fhir/CodeSystem/overdracht-exchange"
ORGANISATION = "http://fhir.nl/fhir/NamingSystem/ura"


async def seed_hub_overdracht(world: WijkWorld, tmp_path: Path) -> tuple[str, str]:
    """An overdracht started in the hub by the nursing organisation: the example transfer's documents
    stored as R4, and an *exported* Task (to the receiver outside the hub) with the advance notice.
    Returns the hub ids of the Task and of the nursing handoff (attached once accepted)."""
    data = repaired_transfer("requested")
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in data}
    task = by_ref["Task/eOverdracht-Task-eov-cert-1.1b-01"]
    task["id"] = "eov-outgoing-01"
    roots = [*references(task), f"Composition/{HANDOFF_ID}"]
    closure: dict[str, dict[str, object]] = {}
    queue = list(roots)
    while queue:
        ref = queue.pop()
        if ref not in closure:
            closure[ref] = by_ref[ref]
            queue += references(by_ref[ref])
    async with world.hub_client() as hub, httpx.AsyncClient() as http:
        receiver = Receiver(hub, http, State(tmp_path / "seed.sqlite"), WIJKZORG_URA, RetryPolicy(attempts=2))
        entries = receiver.transaction("https://nursing.example/fhir", {"Task/eov-outgoing-01": task, **closure}, None)
        receiver.state.close()
        for e in entries:
            if e["resource"]["resourceType"] == "Task":
                e["resource"]["meta"]["tag"] = [{"system": EXCHANGE, "code": "exported"}]
                e["resource"]["requester"] = {"reference": f"Organization?identifier={ORGANISATION}|{WIJKZORG_URA}"}
                e["resource"]["owner"] = {
                    "identifier": {"system": ORGANISATION, "value": RECEIVER_URA},
                    "display": "WijZorgen Honselerdijk",
                }
        response = await hub.transaction(entries)
    ids: dict[str, str] = {}
    for sent, got in zip(entries, response["entry"], strict=False):
        parts = got["response"]["location"].split("/")
        res_type = sent["resource"]["resourceType"]
        key = sent["request"]["url"].rsplit("/", 2)[-2:]
        if res_type == "Task" or key == ["Composition", HANDOFF_ID]:
            ids[res_type] = parts[parts.index(res_type) + 1]
    return ids["Task"], ids["Composition"]


def decide(other: Any, facade: str, task: str, status: str) -> dict[str, Any]:
    """The STU3 receiver sets the Task's state at the sender (the adapter's facade)."""
    body = {"base": facade, "token": TOKEN, "task": task, "status": status}
    out: dict[str, Any] = httpx.post(f"{other.admin}/decide", timeout=60, json=body).json()
    return out


async def test_a_hub_handover_is_served_as_eoverdracht_stu3(wijk_world: WijkWorld, tmp_path: Path) -> None:
    """The whole eOverdracht from the hub's nursing organisation to an STU3 receiver: announced, pulled
    (advance notice, then the handoff), every state the receiver sets lands on the hub Task; a
    receiver that is briefly down is retried; a state that is not the receiver's changes nothing."""
    hub_task_id, handoff_id = await seed_hub_overdracht(wijk_world, tmp_path)
    with counterpart([], tmp_path) as other:
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
                    "senders": [],
                    "receivers": [{"id": "vvt-oost", "notify_url": f"{other.fhir}/Task", "token": TOKEN}],
                }
            ),
            "utf-8",
        )
        cli = str(Path(sys.executable).parent / "adapter-wijkverpleging")
        proc = subprocess.Popen(
            [cli, "serve", "--config", str(config)],
            cwd=REPO,  # noqa: S603
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def announce() -> None:
            out = subprocess.run(  # noqa: S603
                [cli, "announce", "--config", str(config), "--task", hub_task_id, "--receiver", "vvt-oost"],
                capture_output=True,
                check=False,
                cwd=REPO,
            )
            assert out.returncode == 0, out.stderr.decode()

        async def hub_status() -> str:
            async with wijk_world.as_org() as org:  # the requesting organisation sees the answer in the hub
                return str((await org.get(f"/Task/{hub_task_id}")).json()["status"])

        try:
            facade = f"http://127.0.0.1:{port}/stu3/vvt-oost"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "adapter did not start"
                time.sleep(0.1)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            # before the announcement nothing is served, and never without the receiver's token
            assert httpx.get(f"{facade}/Task/{hub_task_id}", headers=auth).status_code == 404
            # 1. announced while the receiver is briefly down: retried
            assert httpx.post(f"{other.admin}/fail", json={"count": 2}).status_code == 200
            announce()
            assert httpx.get(f"{facade}/Task/{hub_task_id}").status_code == 401
            assert httpx.get(f"{other.admin}/task-history/{hub_task_id}").json() == ["requested"]
            pulled = httpx.post(
                f"{other.admin}/pull", timeout=60, json={"base": facade, "token": TOKEN, "task": hub_task_id}
            )
            assert pulled.status_code == 200, pulled.text
            resources = pulled.json()
            notice = next(r for r in resources.values() if r["resourceType"] == "Composition")
            assert notice["type"]["coding"][0]["code"] == "57830-2"
            task = (
                resources.get(f"Task/{hub_task_id}") or httpx.get(f"{facade}/Task/{hub_task_id}", headers=auth).json()
            )
            assert "requester" in task and "agent" in task["requester"]
            assert task["owner"]["identifier"] == {"system": ORGANISATION, "value": RECEIVER_URA}
            # the handoff is not served before it is attached
            assert httpx.get(f"{facade}/Composition/{handoff_id}", headers=auth).status_code == 404
            # 2. received, accepted: each lands on the hub Task
            for status in ("received", "accepted"):
                assert decide(other, facade, hub_task_id, status)["status"] == 200
                assert await hub_status() == status
            # 3. the sender attaches the nursing handoff in the hub and announces again; the receiver pulls it
            async with wijk_world.as_org() as org:
                r = await org.patch(
                    f"/Task/{hub_task_id}",
                    json=[
                        {
                            "op": "add",
                            "path": "/input/-",
                            "value": {
                                "type": {"coding": [NURSING_HANDOFF]},
                                "valueReference": {"reference": f"Composition/{handoff_id}"},
                            },
                        }
                    ],
                    headers={"Content-Type": "application/json-patch+json"},
                )
                assert r.status_code == 200, r.text
            announce()
            pulled = httpx.post(
                f"{other.admin}/pull", timeout=60, json={"base": facade, "token": TOKEN, "task": hub_task_id}
            )
            assert pulled.status_code == 200, pulled.text
            compositions = [r for r in pulled.json().values() if r["resourceType"] == "Composition"]
            original = next(r for r in repaired_transfer() if r["id"] == HANDOFF_ID)
            handoff = next(c for c in compositions if c["type"] == original["type"])
            assert [s["code"] for s in handoff["section"]] == [s["code"] for s in original["section"]]
            assert handoff["meta"]["profile"] == original["meta"]["profile"]
            # every resource served claims its STU3 profile: what it came with from the STU3 sender, and for
            # the hub's own record of the client (which came from no STU3 system) nl-core-patient, which
            # it passes (Nictiz's Sending-XIS asserts this of every resource a $document returns)
            served = pulled.json()
            patient = next(r for r in served.values() if r["resourceType"] == "Patient")
            assert patient["meta"]["profile"] == [NL_CORE_PATIENT]
            assert not ProfileCheck().check(patient, NL_CORE_PATIENT)
            assert [ref for ref, r in served.items() if not (r.get("meta") or {}).get("profile")] == []
            document = httpx.get(f"{facade}/Composition/{handoff_id}/$document", headers=auth, timeout=60)
            assert document.status_code == 200, document.text
            entries = document.json()["entry"]
            assert any(e["resource"]["resourceType"] == "Patient" for e in entries)
            assert [e["fullUrl"] for e in entries if not (e["resource"].get("meta") or {}).get("profile")] == []
            # 4. a receiver cannot cancel (that is the sender's): refused, nothing changes
            refused = decide(other, facade, hub_task_id, "cancelled")
            assert refused["status"] == 422
            assert await hub_status() == "accepted"
            # 5. admission and completion
            for status in ("in-progress", "completed"):
                assert decide(other, facade, hub_task_id, status)["status"] == 200
                assert await hub_status() == status
            assert httpx.get(f"{other.admin}/task-history/{hub_task_id}").json() == [
                "requested",
                "received",
                "accepted",
                "accepted",
                "in-progress",
                "completed",
            ]  # (the second 'accepted' is the announcement with the handoff)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
