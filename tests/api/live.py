"""A live ``hub serve`` in a subprocess, for tests with real FHIR client libraries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: How long :meth:`LiveHub.token` reuses a token (they live an hour).
TOKEN_REUSE_SECONDS = 1800


@dataclass(frozen=True)
class LiveHub:
    base: str
    env: dict[str, str]
    _tokens: dict[str, tuple[float, str]] = field(default_factory=dict, compare=False, repr=False)

    def token(self, spec: str) -> str:
        """A token printed by ``hub token --as spec`` for this hub (same keys, same audience). One per
        spec for half an hour: each ``hub token`` is a process start of half a second or more."""
        made = self._tokens.get(spec)
        if made is not None and time.monotonic() - made[0] < TOKEN_REUSE_SECONDS:
            return made[1]
        hub = Path(sys.executable).parent / "hub"
        out = subprocess.run([str(hub), "token", "--as", spec], env=self.env, capture_output=True, check=True)
        token = out.stdout.decode().strip()
        self._tokens[spec] = (time.monotonic(), token)
        return token


def wait_ready(proc: subprocess.Popen[bytes], url: str, what: str, log: Callable[[], str], seconds: float) -> None:
    """Wait until ``url`` answers 200; fail with the process's log when it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{log()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready in {seconds:.0f} s:\n{log()}")
        time.sleep(0.2)


@contextmanager
def live_hub(database_url: str, var_dir: Path, **env: str) -> Iterator[LiveHub]:
    """Start ``hub serve`` on a free loopback port; yields the running hub; stops it afterwards."""
    port = free_port()
    environment = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_PORT": str(port),
        "HUB_HOST": "127.0.0.1",
        "HUB_VAR_DIR": str(var_dir),
        "HUB_ENVIRONMENT": "test",
        "HUB_LOG_LEVEL": "warning",
        **env,
    }
    hub = Path(sys.executable).parent / "hub"
    log_path = var_dir / "hub.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([str(hub), "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, f"{base}/readyz", "hub serve", lambda: log_path.read_text(errors="replace"), 60)
        yield LiveHub(f"{base}/fhir", environment)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
