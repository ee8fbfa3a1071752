"""The huisarts adapter's test world: a live hub with a care network per client, the fake GP system as
its own process, and the adapter registered with the hub as the practice's system."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from adapters.common.auth import ClientCredentials, load_private_key
from adapters.common.client import HubClient
from adapters.huisarts.gp import GpClient
from adapters.huisarts.state import SyncState
from adapters.huisarts.sync import Practice, Syncer
from tests.adapters.gp_system.fixtures import bsn_for
from tests.adapters.registration import Registered
from tests.api.live import LiveHub, free_port, wait_ready

REPO = Path(__file__).resolve().parents[2]
GP_URA = "00012345"
GP_TOKEN = "his-de-linde-secret"  # noqa: S105 - the fake GP system's test token
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
URA = "http://fhir.nl/fhir/NamingSystem/ura"


@dataclass
class FakeGp:
    base: str
    admin: str
    process: subprocess.Popen[bytes]

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        return dict(httpx.post(f"{self.admin}/put", json=resource, timeout=10).json())

    def read(self, res_type: str, res_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.base}/{res_type}/{res_id}", headers={"Authorization": f"Bearer {GP_TOKEN}"}, timeout=10)
        return dict(r.json())

    def delete(self, res_type: str, res_id: str) -> None:
        httpx.post(f"{self.admin}/delete/{res_type}/{res_id}", timeout=10)

    def delay(self, ms: int) -> None:
        """Delay every search by ``ms`` from now on (``--delay-ms``)."""
        httpx.post(f"{self.admin}/delay/{ms}", timeout=10).raise_for_status()


@contextmanager
def fake_gp(
    version: str, clients: int, *, fail_every: int = 0, slow_ms: int = 0, delay_ms: int = 0
) -> Iterator[FakeGp]:
    """The fake GP system as a separate process on a free loopback port."""
    import tempfile

    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "tests.adapters.gp_system.server",
            "--port",
            str(port),
            "--version",
            version,
            "--clients",
            str(clients),
            "--token",
            GP_TOKEN,
            "--fail-every",
            str(fail_every),
            "--slow-ms",
            str(slow_ms),
            "--delay-ms",
            str(delay_ms),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-2000:]

    try:
        wait_ready(proc, f"{base}/fhir/metadata", "fake GP system", output, 60)
        yield FakeGp(f"{base}/fhir", f"{base}/admin", proc)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


def build_network(hub: LiveHub, clients: int) -> dict[str, str]:
    """The practice's organisation and, per client, a Patient and a care team with the practice in it,
    registered as an administrator registers a new client network. Returns BSN -> hub Patient id."""
    admin = hub.token("admin")
    headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=hub.base, headers=headers, timeout=120) as http:
        org = {
            "resourceType": "Organization",
            "identifier": [{"system": URA, "value": GP_URA}],
            "active": True,
            "name": "Huisartsenpraktijk De Linde",
            "type": [{"coding": [{"system": "http://nictiz.nl/fhir/NamingSystem/organization-type", "code": "Z3"}]}],
        }
        r = http.post("/Organization", json=org, headers={"If-None-Exist": f"identifier={URA}|{GP_URA}"})
        assert r.status_code in (200, 201), r.text
        for start in range(0, clients, 25):
            entries = []
            for i in range(start, min(start + 25, clients)):
                bsn = bsn_for(i)
                entries.append(
                    {
                        "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                        "resource": {
                            "resourceType": "Patient",
                            "identifier": [{"system": BSN, "value": bsn}],
                            "name": [{"family": f"Client{i}", "given": ["Test"]}],
                        },
                        "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={BSN}|{bsn}"},
                    }
                )
                entries.append(
                    {
                        "resource": {
                            "resourceType": "CareTeam",
                            "status": "active",
                            "subject": {"reference": f"urn:uuid:00000000-0000-4000-8000-{i:012d}"},
                            "participant": [
                                {
                                    "member": {"reference": f"Organization?identifier={URA}|{GP_URA}"},
                                    "role": [{"text": "Huisarts"}],
                                }
                            ],
                        },
                        "request": {"method": "POST", "url": "CareTeam"},
                    }
                )
            r = http.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
            assert r.status_code == 200, r.text[:2000]
        found: dict[str, str] = {}
        url: str | None = f"{hub.base}/Patient?_count=500"
        while url:
            bundle = http.get(url).json()
            for e in bundle.get("entry", []):
                bsn = next(i["value"] for i in e["resource"]["identifier"] if i["system"] == BSN)
                found[bsn] = e["resource"]["id"]
            url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    return found


@dataclass
class HuisartsWorld:
    hub: LiveHub
    gp: FakeGp
    adapter: Registered
    work: Path
    patients: dict[str, str]
    version: str

    def practice(self) -> Practice:
        return Practice("de-linde", "Huisartsenpraktijk De Linde", GP_URA, self.gp.base, self.version, GP_TOKEN)

    def hub_client(self) -> HubClient:
        token_url = self.hub.base.rsplit("/fhir", 1)[0] + "/auth/token"
        return HubClient(
            self.hub.base, ClientCredentials(self.adapter.client_id, load_private_key(self.adapter.key_file), token_url)
        )

    def syncer(self, hub: HubClient, state: Path) -> tuple[Syncer, GpClient, SyncState]:
        gp = GpClient(self.gp.base, GP_TOKEN, base_delay=0.05)
        sync_state = SyncState(state)
        return Syncer(hub, gp, self.practice(), sync_state), gp, sync_state

    def config_file(self, state: Path) -> Path:
        path = self.work / f"config-{state.stem}.json"
        path.write_text(
            json.dumps(
                {
                    "hub_base": self.hub.base,
                    "client_id": self.adapter.client_id,
                    "private_key": str(self.adapter.key_file),
                    "state": str(state),
                    "practices": [
                        {
                            "id": "de-linde",
                            "name": "Huisartsenpraktijk De Linde",
                            "ura": GP_URA,
                            "fhir_base": self.gp.base,
                            "fhir_version": self.version,
                            "token": GP_TOKEN,
                        }
                    ],
                }
            )
        )
        return path

    def adapter_command(self, config: Path, *extra: str) -> list[str]:
        return [str(Path(sys.executable).parent / "adapter-huisarts"), "sync", "--config", str(config), *extra]

    def env(self) -> dict[str, str]:
        return {**os.environ}


__all__ = ["GP_TOKEN", "GP_URA", "FakeGp", "HuisartsWorld", "build_network", "fake_gp"]
