"""``HUB_ENVIRONMENT=production`` refuses unsafe settings at start, one clear line each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.app import create_app
from hub.ops.safety import UnsafeSettings, production_problems
from hub.settings import Settings

HUB = str(Path(sys.executable).parent / "hub")
SAFE = {
    "environment": "production",
    "dev_login": False,
    "database_url": "postgresql+asyncpg://hub@db:5432/hub",
    "base_url": "https://hub.example.nl",
    "forwarded_allow_ips": "10.0.0.0/8",
}


def test_safe_production_settings_pass() -> None:
    assert production_problems(Settings(**SAFE)) == []
    assert Settings(**SAFE).log_format == "json"


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"dev_login": True}, "HUB_DEV_LOGIN"),
        ({"database_url": "sqlite+aiosqlite:///./var/hub.db"}, "HUB_DATABASE_URL"),
        ({"forwarded_allow_ips": ""}, "HUB_FORWARDED_ALLOW_IPS"),
        ({"base_url": "http://hub.example.nl"}, "HUB_BASE_URL"),
        ({"demo": True}, "HUB_DEMO"),
    ],
)
def test_each_unsafe_setting_is_one_line(change: dict[str, object], names: str) -> None:
    problems = production_problems(Settings(**{**SAFE, **change}))
    assert len(problems) == 1
    assert problems[0].startswith(names) and "\n" not in problems[0]
    with pytest.raises(UnsafeSettings) as err:
        create_app(Settings(**{**SAFE, **change}))
    assert err.value.problems == problems


def test_development_allows_everything() -> None:
    assert production_problems(Settings(environment="development")) == []


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return {**env, **extra}


def test_hub_serve_refuses_and_names_every_problem(tmp_path: Path) -> None:
    env = _env(HUB_ENVIRONMENT="production", HUB_VAR_DIR=str(tmp_path), HUB_PORT="1")
    done = subprocess.run([HUB, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["refusing to start"] * 4
    joined = "\n".join(lines)
    for name in ("HUB_DEV_LOGIN", "HUB_DATABASE_URL", "HUB_FORWARDED_ALLOW_IPS", "HUB_BASE_URL"):
        assert name in joined


def test_hub_token_is_refused_in_production(tmp_path: Path) -> None:
    env = _env(HUB_ENVIRONMENT="production", HUB_VAR_DIR=str(tmp_path))
    done = subprocess.run(
        [HUB, "token", "--as", "admin"],
        env=env,
        capture_output=True,
        text=True,  # noqa: S603
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "not for production" in done.stderr


def test_settings_read_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("postgresql+asyncpg://hub:s3cret@db:5432/hub\n")
    monkeypatch.setenv("HUB_DATABASE_URL_FILE", str(secret))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    assert Settings().database_url == "postgresql+asyncpg://hub:s3cret@db:5432/hub"
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql+asyncpg://hub@other/hub")
    assert Settings().database_url == "postgresql+asyncpg://hub@other/hub"
