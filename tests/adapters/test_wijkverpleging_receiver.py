"""The eOverdracht receiver role against a live hub (SQLite and PostgreSQL) and the fake STU3 sender."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from adapters.common.client import RetryPolicy
from adapters.wijkverpleging.receiver import SOURCE, Receiver
from adapters.wijkverpleging.sender_api import TransferError
from adapters.wijkverpleging.state import State
from tests.adapters.eoverdracht_env import (
    TASK_ID,
    WijkWorld,
    counterpart,
    repaired_transfer,
    transfer,
    wijk_world,  # noqa: F401 - fixture
    WIJKZORG_URA,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_full_handover_from_an_stu3_sender(wijk_world: WijkWorld, tmp_path: Path) -> None:
    with counterpart(repaired_transfer("requested"), tmp_path) as sender:
        async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
            state = State(tmp_path / "state.sqlite")
            receiver = Receiver(hub, http, state, WIJKZORG_URA, RetryPolicy(attempts=3, base_delay=0.05))
            task = (await http.get(f"{sender.fhir}/Task/{TASK_ID}")).json()
            stored = await receiver.receive(sender.fhir, task)
            hub_task = await hub.read("Task", stored.hub_task_id)
            assert hub_task["status"] == "requested"
            assert hub_task["for"]["reference"] == f"Patient/{wijk_world.patient_id}"
            notice = hub_task["input"][0]["valueReference"]["reference"]
            composition = await hub.read(*notice.split("/"))
            assert composition["identifier"] == {"system": SOURCE, "value": f"{sender.fhir}/Composition/"
                                                 "eOverdracht-AdvanceNotice-eov-cert-1.1b-01"}
            print(state.all())
            state.close()
