"""The README tour is a test: every ```sh block of it runs, in order, against a live hub with the demo
network, from the repository root, exactly as written (with ``HUB_PORT`` pointing at that hub)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from scripts.readme_tour import tour_script
from tests.api.live import live_hub
from tests.conftest import _pg_create, _pg_drop

REPO = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(loop_scope="session")
async def empty_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own (the demo loads only into an empty one)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tour.db'}"
        return
    name = f"hub_tour_{uuid.uuid4().hex[:12]}"
    url = await _pg_create(name)
    try:
        yield url
    finally:
        await _pg_drop(name)


def test_the_readme_tour_runs_verbatim(empty_database: str, tmp_path: Path) -> None:
    script = tmp_path / "tour.sh"
    script.write_text(tour_script((REPO / "README.md").read_text(encoding="utf-8")))
    var = tmp_path / "var"
    var.mkdir()
    # As `make run`: notifications are delivered by the worker inside `hub serve`.
    with live_hub(empty_database, var, HUB_DEMO="true", HUB_EVENTS_IN_PROCESS="true") as hub:
        port = hub.base.rsplit(":", 1)[1].split("/", 1)[0]
        env = {
            **os.environ,
            "HUB_PORT": port,
            "HUB_VAR_DIR": str(var),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("HUB_DATABASE_URL", None)  # the tour finds the hub's database as a user would: via ./var
        run = subprocess.run(["bash", str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        pytest.fail(f"README tour failed (exit {run.returncode}):\n{run.stderr[-3000:]}\n{run.stdout[-2000:]}")
    # every `jq -e` check printed true (and set -e stopped at the first that did not)
    checks = script.read_text().count("jq -e")
    assert checks >= 10 and run.stdout.count("true\n") == checks, run.stdout


def test_the_tour_extractor_refuses_a_readme_without_a_tour() -> None:
    with pytest.raises(ValueError, match="tour"):
        tour_script("# a README\n```sh\necho hi\n```\n")
