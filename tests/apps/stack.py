"""The whole people's side as live processes: the hub (``hub serve`` with the demo network), the PGO and
the admin console (``python -m apps.pgo`` / ``apps.admin``), each on its own loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.api.live import LiveHub, free_port, live_hub, wait_ready
from tests.conftest import throwaway_database

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("ZORGNET_CHROMIUM", "/usr/bin/chromium"))
AXE_JS = Path(os.environ.get("ZORGNET_AXE_JS", ROOT / ".e2e" / "node_modules" / "axe-core" / "axe.min.js"))


@dataclass(frozen=True)
class Stack:
    hub: LiveHub
    hub_url: str
    pgo: str
    admin: str


@contextmanager
def _app(module: str, prefix: str, hub: LiveHub, hub_url: str, state: Path, **extra: str) -> Iterator[str]:
    port = free_port()
    env = {
        **hub.env,
        f"{prefix}HUB_URL": hub_url,
        f"{prefix}PORT": str(port),
        f"{prefix}STATE_DIR": str(state),
        f"{prefix}HUB_COMMAND": str(Path(sys.executable).parent / "hub"),
        f"{prefix}LOG_LEVEL": "warning",
        **{f"{prefix}{k.upper()}": v for k, v in extra.items()},
    }
    log_path = state / f"{module}.log"
    state.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        env=env,
        cwd=ROOT,  # noqa: S603
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, f"{base}/healthz", module, lambda: log_path.read_text(errors="replace"), 90)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


@contextmanager
def people_side(backend: str, tmp: Path) -> Iterator[Stack]:
    """Hub with demo network, then the PGO (registering itself through ``hub apps add --pgo``) and the
    admin console (the demo registers its mantelzorgers, e.g. ``marieke``, as people who may log in)."""
    with ExitStack() as stack:
        url = stack.enter_context(throwaway_database(backend, tmp))
        (tmp / "hub").mkdir(parents=True, exist_ok=True)
        hub = stack.enter_context(live_hub(url, tmp / "hub", HUB_DEMO="true"))
        hub_url = hub.base.removesuffix("/fhir")
        state = tmp / "apps"
        pgo = stack.enter_context(_app("apps.pgo", "PGO_", hub, hub_url, state / "pgo", poll_interval="1"))
        admin = stack.enter_context(_app("apps.admin", "ADMIN_", hub, hub_url, state / "admin"))
        yield Stack(hub, hub_url, pgo, admin)
