"""The file drop as a separate process: kill -9 in the middle of a batch of 500, restart, every
message applied exactly once. And the HTTP inbox as a separate process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.common.client import HubClient
from adapters.gemeente import codes as c
from tests.adapters.conftest import DATA, LiveNetwork, gemeente_network
from tests.adapters.iwmo_builders import Client, Product, valid_bsns, wmo301
from tests.api.live import free_port

BIN = Path(sys.executable).parent / "adapter-gemeente"


def _env(network: LiveNetwork, state: Path) -> dict[str, str]:
    s = network.settings(state)
    return {
        **os.environ,
        "ADAPTER_GEMEENTE_HUB_BASE": s.hub_base,
        "ADAPTER_GEMEENTE_CLIENT_ID": s.client_id,
        "ADAPTER_GEMEENTE_PRIVATE_KEY": str(s.private_key),
        "ADAPTER_GEMEENTE_STATE": str(state),
        "ADAPTER_GEMEENTE_URA": s.ura,
        "ADAPTER_GEMEENTE_GEMEENTE_CODE": s.gemeente_code,
    }


@pytest.fixture
def network_of_its_own(backend: str, tmp_path: Path) -> Iterator[LiveNetwork]:
    """500 clients: kept out of the shared network, whose every resource the rules tests snapshot."""
    (tmp_path / "hub").mkdir()
    with gemeente_network(backend, tmp_path / "hub") as network:
        yield network


async def test_kill_9_mid_batch_then_restart_applies_each_once(network_of_its_own: LiveNetwork, tmp_path: Path) -> None:
    async with network_of_its_own.client() as hub_client:
        await _kill_9_mid_batch_then_restart(network_of_its_own, hub_client, tmp_path)


async def _kill_9_mid_batch_then_restart(live_network: LiveNetwork, hub_client: HubClient, tmp_path: Path) -> None:
    inbox, outbox, state = tmp_path / "in", tmp_path / "out", tmp_path / "state.sqlite"
    inbox.mkdir()
    bsns = valid_bsns(500, start=600000000)
    numbers = [str(800000 + i) for i in range(500)]
    for i, (bsn, nummer) in enumerate(zip(bsns, numbers, strict=True)):
        (inbox / f"{i:04d}.xml").write_bytes(wmo301(f"K{i:05d}", Client(bsn=bsn), [Product(nummer)]))
    env = _env(live_network, state)
    proc = subprocess.Popen(  # noqa: S603
        [str(BIN), "run", "--inbox", str(inbox), "--outbox", str(outbox), "--interval", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list((inbox / "done").glob("*.WMO302.xml"))) < 60:
            assert proc.poll() is None and time.monotonic() < deadline, "the adapter did not get going"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    moved = len(list((inbox / "done").glob("[0-9][0-9][0-9][0-9].xml")))
    assert 0 < moved < 500, "the kill should land mid-batch"
    out = subprocess.run(  # noqa: S603
        [str(BIN), "run", "--inbox", str(inbox), "--outbox", str(outbox), "--once"],
        env=env,
        capture_output=True,
        check=True,
        timeout=600,
    )
    stats = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert stats["failed"] == 0 and stats["deferred"] == 0
    assert sorted(p.name for p in (inbox / "done").glob("[0-9][0-9][0-9][0-9].xml")) == [
        f"{i:04d}.xml" for i in range(500)
    ]
    assert list((inbox / "failed").iterdir()) == [] and list(inbox.glob("*.xml")) == []
    assert len(list(outbox.glob("*.WMO302.xml"))) == 500
    found: list[dict] = []
    for chunk in range(0, 500, 100):
        query = ",".join(f"{c.TOEWIJZING_SYSTEM}|{n}" for n in numbers[chunk : chunk + 100])
        found += await hub_client.search("ServiceRequest", {"identifier": query, "_count": "200"})
    assert sorted(r["identifier"][0]["value"] for r in found) == sorted(numbers)  # once each
    assert {r["meta"]["versionId"] for r in found} == {"1"}  # applied once: never written again
    patients = await hub_client.search(
        "Patient", {"identifier": ",".join(f"{c.BSN_SYSTEM}|{b}" for b in bsns[:100]), "_count": "200"}
    )
    assert len(patients) == 100


def test_http_inbox_answers_retours(live_network: LiveNetwork, tmp_path: Path) -> None:
    port = free_port()
    env = _env(live_network, tmp_path / "state.sqlite")
    proc = subprocess.Popen(  # noqa: S603
        [str(BIN), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        bsn = valid_bsns(1, start=610000000)[0]
        message = wmo301("HTTP1", Client(bsn=bsn), [Product("900001")])
        r = httpx.post(f"{base}/wmo", content=message, headers={"Content-Type": "application/xml"}, timeout=60)
        assert r.status_code == 200 and r.headers["X-Wmo-Status"] == "accepted"
        assert b"wmo302:Bericht" in r.content and b"<wmo302:RetourCode>0200</wmo302:RetourCode>" in r.content
        again = httpx.post(f"{base}/wmo", content=message, timeout=60)
        assert again.content == r.content
        broken = httpx.post(
            f"{base}/wmo",
            content=message.replace(bsn.encode(), b"123456789").replace(b">HTTP1<", b">HTTP2<"),
            timeout=60,
        )
        assert broken.status_code == 200 and broken.headers["X-Wmo-Status"] == "rejected"
        assert "elfproef" in broken.headers["X-Wmo-Reasons"]
        retour = httpx.post(f"{base}/wmo", content=(DATA / "WMO306.xml").read_bytes(), timeout=60)
        assert retour.status_code == 202 and retour.headers["X-Wmo-Status"] == "acknowledged"
        junk = httpx.post(f"{base}/wmo", content=b"<!DOCTYPE x><x/>", timeout=60)
        assert junk.status_code == 400
        big = httpx.post(f"{base}/wmo", content=b"<x>" + b" " * 1_100_000 + b"</x>", timeout=60)
        assert big.status_code == 413
    finally:
        proc.terminate()
        proc.wait(timeout=15)
