"""The container image: its Dockerfile read with the official parser (the ``dockerfile`` package), and its
entrypoint run as-is outside a container: the image's ENV plus the compose file's environment, the
migration service's command, then ENTRYPOINT + CMD, the HEALTHCHECK command, and a SIGTERM stop.

What cannot run here (no image build, no container runtime): the build itself, the read-only root
filesystem and the uid; the test stands the venv in for /opt/venv and a temp dir for /var/lib/hub.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dockerfile
import httpx

from tests.api.live import free_port
from tests.deploy.test_compose import load as load_compose

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"
VENV_BIN = str(Path(sys.executable).parent)


def stages() -> list[list[Any]]:
    out: list[list[Any]] = []
    for cmd in dockerfile.parse_file(str(DOCKERFILE)):
        if cmd.cmd == "FROM":
            out.append([])
        if out:
            out[-1].append(cmd)
    return out


def final_stage() -> dict[str, Any]:
    """ENV, USER, ENTRYPOINT, CMD, HEALTHCHECK of the image's last stage."""
    env: dict[str, str] = {}
    spec: dict[str, Any] = {"env": env}
    for cmd in stages()[-1]:
        if cmd.cmd == "ENV":
            pairs = list(cmd.value)
            for key, value in zip(pairs[::2], pairs[1::2], strict=True):
                env[key] = value
        elif cmd.cmd in ("USER", "STOPSIGNAL", "WORKDIR"):
            spec[cmd.cmd.lower()] = cmd.value[0]
        elif cmd.cmd in ("ENTRYPOINT", "CMD"):
            assert cmd.json, f"{cmd.cmd} must be in exec (JSON) form so that SIGTERM reaches the hub"
            spec[cmd.cmd.lower()] = list(cmd.value)
        elif cmd.cmd == "HEALTHCHECK":
            assert cmd.value[0] == "CMD" and cmd.json
            spec["healthcheck"] = list(cmd.value[1:])
        elif cmd.cmd == "RUN":
            spec.setdefault("run", []).append(cmd.value[0])
    return spec


def test_image_is_multi_stage_non_root_and_checked() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    assert [s[0].value[-1] for s in all_stages] == ["build", "runtime"]
    build_runs = " ".join(c.value[0] for c in all_stages[0] if c.cmd == "RUN")
    assert "pip install" in build_runs
    spec = final_stage()
    assert not any("pip install" in r for r in spec["run"]), "no build tools in the runtime stage"
    assert any("postgresql-client" in r for r in spec["run"]), "pg_dump/pg_restore for hub backup"
    uid = spec["user"].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert spec["stopsignal"] == "SIGTERM"
    assert spec["entrypoint"] == ["hub"] and spec["cmd"] == ["serve"]
    assert spec["healthcheck"] == ["python", "-m", "hub.ops.healthcheck"]
    env = spec["env"]
    assert env["HUB_ENVIRONMENT"] == "production" and env["HUB_VAR_DIR"] == "/var/lib/hub"
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")  # noqa: S108 - the container path
    assert env["PATH"].startswith("/opt/venv/bin:")


def _container_env(tmp: Path, database_url: str, port: int) -> dict[str, str]:
    """The environment the hub container would have: image ENV, compose environment, secrets as files."""
    spec = final_stage()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PROMETHEUS_"))}
    for key, value in spec["env"].items():
        env[key] = value.replace("/opt/venv/bin", VENV_BIN).replace("$PATH", os.environ["PATH"])
    env.update({k: str(v) for k, v in load_compose()["services"]["hub"]["environment"].items()})
    secret = tmp / "database_url"
    secret.write_text(database_url)
    env.update(
        {
            "HUB_DATABASE_URL_FILE": str(secret),  # compose: /run/secrets/database_url
            "HUB_VAR_DIR": str(tmp / "var"),  # the image: /var/lib/hub
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),  # the image: /tmp/hub-metrics
            "HUB_HOST": "127.0.0.1",  # the image: 0.0.0.0; loopback is enough here
            "HUB_PORT": str(port),
        }
    )
    return env


async def test_the_entrypoint_runs_as_is(fresh_pg_url: str, tmp_path: Path) -> None:
    spec = final_stage()
    port = free_port()
    env = _container_env(tmp_path, fresh_pg_url, port)
    assert env["HUB_ENVIRONMENT"] == "production" and env["HUB_WORKERS"] == "2"
    keys = subprocess.run(
        ["hub", "keys", "init", "--var-dir", env["HUB_VAR_DIR"]],
        env=env,  # noqa: S603, S607
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert keys.returncode == 0, keys.stderr  # deploy/secrets.sh makes these; compose mounts them read-only
    migrate = load_compose()["services"]["migrate"]
    done = subprocess.run(
        [*spec["entrypoint"], *migrate["command"]],
        env=env,
        capture_output=True,  # noqa: S603
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    log = (tmp_path / "hub.log").open("wb")
    proc = subprocess.Popen(
        [*spec["entrypoint"], *spec["cmd"]],
        env=env,
        stdout=log,  # noqa: S603
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        healthy = False
        while not healthy and time.monotonic() < deadline and proc.poll() is None:
            probe = subprocess.run(spec["healthcheck"], env=env, timeout=30, check=False)  # noqa: S603
            healthy = probe.returncode == 0
            if not healthy:
                time.sleep(0.5)
        assert healthy, (tmp_path / "hub.log").read_text()
        compose_check = load_compose()["services"]["hub"]["healthcheck"]["test"]
        assert compose_check[0] == "CMD"
        assert subprocess.run(compose_check[1:], env=env, timeout=30, check=False).returncode == 0  # noqa: S603

        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            meta = await client.get("/fhir/metadata", headers={"X-Forwarded-Proto": "https"})
            assert meta.status_code == 200
            assert meta.json()["resourceType"] == "CapabilityStatement"
            # The development login does not exist in production.
            assert (await client.get("/auth/authorize")).status_code in (404, 405)
            metrics = await client.get("/metrics")
            assert "hub_http_requests_total" in metrics.text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
        log.close()
    assert code == 0
    lines = (tmp_path / "hub.log").read_text().splitlines()
    structured = [json.loads(line) for line in lines if line.startswith("{")]
    assert structured and all("level" in rec for rec in structured)
    assert any(rec.get("logger") == "hub.access" and rec["path"] == "/fhir/metadata" for rec in structured)
