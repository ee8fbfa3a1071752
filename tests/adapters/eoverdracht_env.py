"""A live hub (SQLite and PostgreSQL) with the wijkverpleging adapter registered, and the fake eOverdracht
STU3 counterpart as its own process serving one of the example transfers."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.common.auth import ClientCredentials, load_private_key
from adapters.common.client import HubClient, RetryPolicy
from tests.adapters.registration import Registered, register_system_app
from tests.api.live import LiveHub, free_port, live_hub
from tests.conftest import throwaway_database

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "eoverdracht"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
#: The receiving nursing organisation the adapter acts for, and the client of the example transfer.
WIJKZORG_URA = "00056789"
CLIENT_BSN = "999900080"
TASK_ID = "eOverdracht-Task-eov-cert-1.1b-01"
#: Two references in the published Kwalificatie 1.1b example point at resources the example does not
#: contain (a Patient id from another example set, a Condition id in lower case); :func:`repaired_transfer`
#: points them at the resources evidently meant. The unrepaired set is the "missing entries" case.
REPAIRED_REFERENCES = {
    "Patient/nl-core-patient-01": "Patient/nl-core-patient-eov-cert-1.1b-01",
    "Condition/zib-problem-eov-cert-1.1b-02": "Condition/zib-Problem-eov-cert-1.1b-02",
}


def transfer(name: str = "kwalificatie-1.1b") -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((DATA / f"transfer-{name}.json").read_text("utf-8"))
    return data


def repaired_transfer(task_status: str = "requested") -> list[dict[str, Any]]:
    text = json.dumps(transfer())
    for old, new in REPAIRED_REFERENCES.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    resources: list[dict[str, Any]] = json.loads(text)
    for r in resources:
        if r["resourceType"] == "Task":
            r["status"] = task_status
    return resources


@dataclass
class Counterpart:
    fhir: str
    admin: str
    proc: subprocess.Popen[bytes]


@contextmanager
def counterpart(
    resources: list[dict[str, Any]], work: Path, *, fail_first: int = 0, port: int | None = None
) -> Iterator[Counterpart]:
    """The fake STU3 system on a loopback port (a free one unless given), serving ``resources``."""
    port = port or free_port()
    data = work / f"counterpart-{uuid.uuid4().hex[:8]}.json"
    data.write_text(json.dumps(resources), "utf-8")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "tests.adapters.eoverdracht_counterpart",
            "--port",
            str(port),
            "--data",
            str(data),
            "--fail-first",
            str(fail_first),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"counterpart exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{base}/fhir/metadata", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("counterpart did not start in 60 s")
            time.sleep(0.1)
        yield Counterpart(f"{base}/fhir", f"{base}/admin", proc)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


@dataclass
class WijkWorld:
    hub: LiveHub
    adapter: Registered
    work: Path
    patient_id: str

    def hub_client(self) -> HubClient:
        base = self.hub.base
        token_url = (base[: -len("/fhir")] if base.endswith("/fhir") else base) + "/auth/token"
        creds = ClientCredentials(self.adapter.client_id, load_private_key(self.adapter.key_file), token_url)
        return HubClient(base, creds, retry=RetryPolicy(attempts=3, base_delay=0.05))

    def as_admin(self) -> httpx.Client:
        token = self.hub.token("admin")
        return httpx.Client(base_url=self.hub.base, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def as_org(self) -> httpx.AsyncClient:
        """The receiving organisation's own nursing system, working in the hub (not through the adapter)."""
        token = self.hub.token(f"org:{WIJKZORG_URA}")
        return httpx.AsyncClient(base_url=self.hub.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def build_network(hub: LiveHub) -> str:
    """The receiving organisation and the client, as the network's administrator registers them."""
    token = hub.token("admin")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=hub.base, headers=headers, timeout=60) as http:
        org = {
            "resourceType": "Organization",
            "identifier": [{"system": URA, "value": WIJKZORG_URA}],
            "active": True,
            "name": "Wijkzorg Rivierstad",
        }
        r = http.post("/Organization", json=org, headers={"If-None-Exist": f"identifier={URA}|{WIJKZORG_URA}"})
        assert r.status_code in (200, 201), r.text
        org_id = str(r.json()["id"])
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": BSN, "value": CLIENT_BSN}],
            "name": [{"family": "XXX_Molog", "given": ["Maria"]}],
        }
        r = http.post("/Patient", json=patient, headers={"If-None-Exist": f"identifier={BSN}|{CLIENT_BSN}"})
        assert r.status_code in (200, 201), r.text
        patient_id = str(r.json()["id"])
        # The receiving organisation is in the client's care team (the referral that led to the handover);
        # the hub grants an organisation nothing about a client before that (see docs/adapter-wijkverpleging.md).
        team = {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": f"Patient/{patient_id}"},
            "participant": [{"member": {"reference": f"Organization/{org_id}"}, "role": [{"text": "Wijkverpleging"}]}],
        }
        r = http.post("/CareTeam", json=team)
        assert r.status_code in (200, 201), r.text
        return patient_id


@pytest.fixture(scope="session", name="wijk_world")
def wijk_world_fixture(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WijkWorld]:
    work = tmp_path_factory.mktemp(f"wijkverpleging-{backend}")
    with throwaway_database(backend, work) as url, live_hub(url, work) as hub:
        registered = register_system_app(hub.env, work, "wijkzorg-rivierstad", WIJKZORG_URA)
        yield WijkWorld(hub, registered, work, build_network(hub))
