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

import httpx

from adapters.common.client import RetryPolicy
from adapters.wijkverpleging.convert import NURSING_HANDOFF
from adapters.wijkverpleging.receiver import Receiver
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
TOKEN = "receiver-token-0123456789abcdef"


async def seed_hub_overdracht(world: WijkWorld, tmp_path: Path) -> str:
    """An overdracht started in the hub: the example transfer (with its handoff) written as R4."""
    data = repaired_transfer("requested")
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in data}
    task = by_ref["Task/eOverdracht-Task-eov-cert-1.1b-01"]
    task["id"] = "eov-outgoing-01"
    task["input"].append(
        {"type": {"coding": [NURSING_HANDOFF]}, "valueReference": {"reference": f"Composition/{HANDOFF_ID}"}}
    )
    from adapters.wijkverpleging.sender_api import references

    closure: dict[str, dict[str, object]] = {}
    queue = references(task)
    while queue:
        ref = queue.pop()
        if ref not in closure:
            closure[ref] = by_ref[ref]
            queue += references(by_ref[ref])
    async with world.hub_client() as hub, httpx.AsyncClient() as http:
        receiver = Receiver(hub, http, State(tmp_path / "seed.sqlite"), WIJKZORG_URA, RetryPolicy(attempts=2))
        entries = receiver.transaction("https://nursing.example/fhir", {"Task/eov-outgoing-01": task, **closure}, None)
        owner = next(
            e["fullUrl"]
            for e in entries
            if e["request"]["url"].endswith("/Organization/nl-core-organization-eov-cert-1.1b-01")
        )
        for e in entries:
            if e["resource"]["resourceType"] == "Task":
                e["resource"]["owner"] = {"reference": owner}
        response = await hub.transaction(entries)
        receiver.state.close()
    location = next(
        e["response"]["location"]
        for e in response["entry"]
        if "/Task/" in e["response"]["location"] or e["response"]["location"].startswith("Task/")
    )
    parts = location.split("/")
    return parts[parts.index("Task") + 1]


async def test_a_hub_handover_is_served_as_eoverdracht_stu3(wijk_world: WijkWorld, tmp_path: Path) -> None:
    hub_task_id = await seed_hub_overdracht(wijk_world, tmp_path)
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
            # before the announcement nothing is served, and never without the receiver's token
            assert (
                httpx.get(f"{facade}/Task/{hub_task_id}", headers={"Authorization": f"Bearer {TOKEN}"}).status_code
                == 404
            )
            out = subprocess.run(
                [
                    cli,
                    "announce",
                    "--config",
                    str(config),
                    "--task",
                    hub_task_id,  # noqa: S603
                    "--receiver",
                    "vvt-oost",
                ],
                capture_output=True,
                check=False,
                cwd=REPO,
            )
            assert out.returncode == 0, out.stderr.decode()
            assert httpx.get(f"{facade}/Task/{hub_task_id}").status_code == 401
            assert httpx.get(f"{other.admin}/task-history/{hub_task_id}").json() == ["requested"]
            pulled = httpx.post(
                f"{other.admin}/pull", timeout=60, json={"base": facade, "token": TOKEN, "task": hub_task_id}
            )
            assert pulled.status_code == 200, pulled.text
            resources = pulled.json()
            compositions = [r for r in resources.values() if r["resourceType"] == "Composition"]
            original = next(r for r in repaired_transfer() if r["id"] == HANDOFF_ID)
            handoff = next(c for c in compositions if c["type"] == original["type"])
            assert [s["code"] for s in handoff["section"]] == [s["code"] for s in original["section"]]
            assert handoff["meta"]["profile"] == original["meta"]["profile"]
            task = (
                resources.get(f"Task/{hub_task_id}")
                or httpx.get(f"{facade}/Task/{hub_task_id}", headers={"Authorization": f"Bearer {TOKEN}"}).json()
            )
            assert "requester" in task and "agent" in task["requester"]
            decided = httpx.post(
                f"{other.admin}/decide",
                timeout=60,
                json={"base": facade, "token": TOKEN, "task": hub_task_id, "status": "accepted"},
            )
            assert decided.json()["status"] == 200, decided.text
            async with wijk_world.as_org() as org:  # the requesting organisation sees the answer in the hub
                hub_task = (await org.get(f"/Task/{hub_task_id}")).json()
            assert hub_task["status"] == "accepted", hub_task
            # a receiver cannot cancel (that is the sender's)
            refused = httpx.post(
                f"{other.admin}/decide",
                timeout=60,
                json={"base": facade, "token": TOKEN, "task": hub_task_id, "status": "cancelled"},
            )
            assert refused.json()["status"] == 422
        finally:
            proc.terminate()
            proc.wait(timeout=10)
