"""deploy/compose.yaml parsed and validated by compose-spec (the Rust compose_spec crate: strict, unknown
keys and bad values fail), after YAML anchors/merge keys and ``${VAR:-default}`` interpolation, as
``docker compose config`` does; then what the file must hold for a production-shaped start."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from compose_spec import PyCompose

from hub.ops.safety import production_problems
from hub.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution, throughout the file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, str):
        return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    return value


def load(env: dict[str, str] | None = None) -> dict[str, Any]:
    data = interpolate(yaml.safe_load((DEPLOY / "compose.yaml").read_text()), env or {})
    compose = PyCompose.from_json(json.dumps(data))
    compose.validate()
    compose.to_spec()  # and the pydantic models of the Compose Specification
    return compose.to_dict()


def test_compose_file_is_valid() -> None:
    services = load()["services"]
    assert set(services) == {
        "postgres",
        "migrate",
        "hub",
        "worker",
        "proxy",
        "adapter-gemeente",
        "adapter-huisarts",
        "adapter-wijkverpleging",
        "pgo",
        "admin-console",
    }


def test_migrations_run_once_before_hub_and_worker() -> None:
    services = load()["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("hub", "worker"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["hub"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert services["hub"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / services["hub"]["build"]["context"] / services["hub"]["build"]["dockerfile"]).exists()


def test_hub_processes_are_locked_down() -> None:
    services = load()["services"]
    for name in ("migrate", "hub", "worker"):
        svc = services[name]
        assert svc["read_only"] is True
        assert svc["user"] == "10001:10001"
        assert svc["cap_drop"] == ["ALL"]
        assert "/tmp:size=64m,mode=1777" in svc["tmpfs"]  # noqa: S108 - the container path
        assert svc["secrets"] == ["database_url"]
        assert not svc.get("ports"), "only the proxy publishes a port"
    for name in ("adapter-gemeente", "adapter-huisarts", "adapter-wijkverpleging", "pgo", "admin-console"):
        assert services[name]["read_only"] is True and services[name]["user"] == "10001:10001"
        assert services[name]["profiles"] in (["adapters"], ["apps"])


def test_adapter_commands_are_what_the_adapters_accept(tmp_path: Path) -> None:
    """The adapters in the image's distribution: each service's command parsed by the adapter's own CLI,
    and the huisarts adapter's configuration file loaded by its own loader."""
    import os
    import sys

    from adapters.huisarts.config import HuisartsConfig

    services = load()["services"]
    scripts = Path(sys.executable).parent
    gemeente = services["adapter-gemeente"]
    done = subprocess.run(  # noqa: S603 - the adapter's own console script; --help parses every option first
        [str(scripts / gemeente["entrypoint"][0]), *gemeente["command"], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    options = [a for a in gemeente["command"] if a.startswith("--")]
    assert options and all(o in done.stdout for o in options)

    huisarts = services["adapter-huisarts"]
    assert huisarts["entrypoint"] == ["adapter-huisarts"] and huisarts["command"][0] == "run"
    mounted = next(v for v in huisarts["volumes"] if isinstance(v, str) and v.startswith("./adapter-huisarts.json"))
    host, container = mounted.split(":")[:2]
    assert huisarts["command"][huisarts["command"].index("--config") + 1] == container
    config = HuisartsConfig.load(DEPLOY / host)
    assert config.hub_base.endswith("/fhir") and config.practices
    assert str(config.private_key) == "/run/secrets/adapter_huisarts_key"
    assert "huisarts_practice_token" in load()["secrets"]

    from adapters.wijkverpleging.config import WijkverplegingConfig

    wijk = services["adapter-wijkverpleging"]
    assert wijk["entrypoint"] == ["adapter-wijkverpleging"] and wijk["command"][0] == "serve"
    mounted = next(v for v in wijk["volumes"] if isinstance(v, str) and v.startswith("./adapter-wijkverpleging.json"))
    host, container = mounted.split(":")[:2]
    assert wijk["command"][wijk["command"].index("--config") + 1] == container
    wconfig = WijkverplegingConfig.load(DEPLOY / host)
    assert wconfig.hub_base.endswith("/fhir") and str(wconfig.private_key) == "/run/secrets/adapter_wijkverpleging_key"


def test_app_services_are_what_the_apps_read() -> None:
    """The PGO and the admin console: their modules exist, and their environment is their own settings."""
    import importlib.util

    from apps.common.config import AdminSettings, PgoSettings

    services = load()["services"]
    for name, settings_cls, prefix in (("pgo", PgoSettings, "PGO_"), ("admin-console", AdminSettings, "ADMIN_")):
        svc = services[name]
        assert svc["entrypoint"][:2] == ["python", "-m"]
        assert importlib.util.find_spec(svc["entrypoint"][2]) is not None
        env = svc["environment"]
        fields = {k.removeprefix(prefix).lower(): v for k, v in env.items()}
        assert all(k.startswith(prefix) for k in env) and set(fields) <= set(settings_cls.model_fields)
        settings = settings_cls(**{k: v for k, v in fields.items() if v != ""})
        assert settings.host == "0.0.0.0" and str(settings.port) in str(svc["ports"])  # noqa: S104
        assert settings.hub_url.startswith("https://")


def test_hub_environment_passes_the_production_checks(tmp_path: Path) -> None:
    env = load()["services"]["hub"]["environment"]
    assert env["HUB_DATABASE_URL_FILE"] == "/run/secrets/database_url"
    fields = {k.removeprefix("HUB_").lower(): v for k, v in env.items() if k != "HUB_DATABASE_URL_FILE"}
    settings = Settings(**fields, database_url="postgresql+asyncpg://hub:pw@postgres:5432/hub")
    assert production_problems(settings) == []


def test_every_secret_file_is_made_by_secrets_sh() -> None:
    compose = load()
    script = (DEPLOY / "secrets.sh").read_text()
    for name, secret in compose["secrets"].items():
        file = Path(secret["file"]).name
        assert file in script or re.sub(r"adapter_\w+?_key", "adapter_${adapter}_key", file) in script, name
    for svc in ("migrate", "hub", "worker"):
        mounted = {v.split(":")[0] for v in compose["services"][svc]["volumes"] if v.startswith("./")}
        assert mounted == {"./secrets/keys", "./secrets/audit-keys"}
    assert "keys init" in script


def test_secrets_sh_makes_the_files(tmp_path: Path) -> None:
    """The script itself, on a copy of deploy/ (hub keys init from the installed hub, openssl)."""
    import os
    import shutil
    import sys

    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("secrets", "helm"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(copy / "secrets.sh")],
        env=env,
        capture_output=True,
        text=True,  # noqa: S603, S607
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for secret in load()["secrets"].values():
        assert (copy / secret["file"]).stat().st_size > 0, secret["file"]
    assert (copy / "secrets/keys/jwks.json").exists() and (copy / "secrets/audit-keys/keyring.json").exists()
    url = (copy / "secrets/database_url").read_text()
    assert url.startswith("postgresql+asyncpg://hub:") and url.endswith("@postgres:5432/hub")
