"""Registering an app with the hub at its first start, through the hub's own CLI.

The app does not import the hub: it runs the ``hub apps add`` command (same settings as the hub it
serves, from the environment) and keeps the JSON it prints in its state directory, so the next
start reuses the client id.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any


def wait_for_hub(hub_url: str, timeout: float = 90.0) -> None:
    """Block until the hub answers ``/readyz`` (``make run`` starts the hub and the apps together)."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{hub_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the hub at {hub_url} did not become ready in {timeout:.0f} s")
        time.sleep(0.5)


def client_file(state_dir: Path) -> Path:
    return state_dir / "client.json"


def ensure_pgo_client(hub_command: str, state_dir: Path, *, name: str, redirect_uri: str, client_id: str = "") -> str:
    """The client id of this PGO app: configured, remembered, or registered now."""
    if client_id:
        return client_id
    path = client_file(state_dir)
    if path.exists():
        saved: dict[str, Any] = json.loads(path.read_text())
        if saved.get("redirect_uri") == redirect_uri and saved.get("client_id"):
            return str(saved["client_id"])
    argv = [*shlex.split(hub_command), "apps", "add", "--pgo", "--name", name, "--redirect-uri", redirect_uri]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"registering with the hub failed ({' '.join(argv)}): {done.stderr.strip()}")
    answer = json.loads(done.stdout)
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"client_id": answer["client_id"], "redirect_uri": redirect_uri, "name": name}))
    return str(answer["client_id"])
