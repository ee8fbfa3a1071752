"""Fixtures for the operations tests: a fresh database of the backend under test, a ``hub serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest_asyncio

from tests.api.live import free_port
from tests.conftest import _pg_create, _pg_drop

HUB = str(Path(sys.executable).parent / "hub")


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own (SQLite file or a new PostgreSQL database), dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"hub_ops_{uuid.uuid4().hex[:12]}"
    url = await _pg_create(name)
    try:
        yield url
    finally:
        await _pg_drop(name)


def hub_env(database_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PROMETHEUS_"))}
    return {
        **env,
        "HUB_DATABASE_URL": database_url,
        "HUB_VAR_DIR": str(var_dir),
        "HUB_ENVIRONMENT": "test",
        "HUB_HOST": "127.0.0.1",
        **extra,
    }


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base: str
    env: dict[str, str]
    log: Path

    def token(self, spec: str) -> str:
        out = subprocess.run([HUB, "token", "--as", spec], env=self.env, capture_output=True, check=True)  # noqa: S603
        return out.stdout.decode().strip()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as Kubernetes and ``docker stop`` send it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


@contextmanager
def serve(env: dict[str, str], *args: str) -> Iterator[Served]:
    """``hub serve ARGS`` on a free loopback port, ready when yielded; stopped (SIGTERM, then kill) after."""
    port = free_port()
    env = {**env, "HUB_PORT": str(port)}
    log = Path(env["HUB_VAR_DIR"]) / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = log.open("wb")
    proc = subprocess.Popen([HUB, "serve", *args], env=env, stdout=fh, stderr=subprocess.STDOUT)  # noqa: S603
    served = Served(proc, f"http://127.0.0.1:{port}", env, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hub serve exited early:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{served.base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hub serve did not become ready in 90 s")
            time.sleep(0.2)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        fh.close()
