"""``hub backup`` / ``hub restore`` on PostgreSQL: the restored hub has the same data, and its audit log
(chain, signatures, witness) passes ``hub audit verify``."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from sqlalchemy import func, select

from hub.app import create_app
from hub.store.db import Database
from hub.store.tables import resource
from tests.conftest import _pg_create, _pg_drop, make_settings, token_for_app
from tests.ops.conftest import HUB, hub_env


@pytest_asyncio.fixture(loop_scope="session")
async def two_databases() -> AsyncIterator[tuple[str, str]]:
    names = [f"hub_backup_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    urls = [await _pg_create(n) for n in names]
    try:
        yield urls[0], urls[1]
    finally:
        for n in names:
            await _pg_drop(n)


async def _fill(database_url: str, var_dir: Path) -> None:
    settings = make_settings(database_url, var_dir, extra_settings={"audit_checkpoint_every": "5"})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        headers = {"Authorization": f"Bearer {token_for_app(app, 'org:00099999:practitioner:900009999')}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", headers=headers) as c:
            for i in range(12):
                r = await c.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": f"p{i}"}]})
                assert r.status_code == 201
                assert (await c.get(f"/fhir/Patient/{r.json()['id']}")).status_code == 200


async def _resources(database_url: str) -> int:
    db = Database(database_url, pool_size=1)
    try:
        async with db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(resource))).scalar_one())
    finally:
        await db.dispose()


def hub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUB, *args], env=env, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603


async def test_backup_then_restore_verifies(two_databases: tuple[str, str], tmp_path: Path) -> None:
    source_url, target_url = two_databases
    source_var, target_var, out = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    await _fill(source_url, source_var)
    source = hub_env(source_url, source_var)
    assert hub(source, "audit", "verify").returncode == 0

    made = hub(source, "backup", str(out))
    assert made.returncode == 0, made.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["audit_head"]["seq"] >= 24
    assert set(manifest["files"]) == {
        "database.dump",
        "keys/jwks.json",
        "audit-keys/keyring.json",
        "audit-keys/witness.ndjson",
    }
    witnessed = [json.loads(line)["seq"] for line in (out / "audit-keys/witness.ndjson").read_text().splitlines()]
    assert witnessed and max(witnessed) <= manifest["audit_head"]["seq"]
    assert (out / "keys/jwks.json").stat().st_mode & 0o077 == 0

    target = hub_env(target_url, target_var)
    restored = hub(target, "restore", str(out))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert restored.stdout.splitlines()[-1].startswith("OK: ")
    verified = hub(target, "audit", "verify")
    assert verified.returncode == 0, verified.stdout
    assert await _resources(target_url) == await _resources(source_url) >= 12
    assert (target_var / "keys/jwks.json").read_bytes() == (source_var / "keys/jwks.json").read_bytes()

    again = hub(target, "restore", str(out))
    assert again.returncode == 2
    assert "already holds a hub" in again.stderr


async def test_restore_refuses_a_damaged_backup(two_databases: tuple[str, str], tmp_path: Path) -> None:
    source_url, target_url = two_databases
    await _fill(source_url, tmp_path / "source")
    out = tmp_path / "backup"
    assert hub(hub_env(source_url, tmp_path / "source"), "backup", str(out)).returncode == 0
    dump = out / "database.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    refused = hub(hub_env(target_url, tmp_path / "target"), "restore", str(out))
    assert refused.returncode == 2
    assert "database.dump does not match its checksum" in refused.stderr
    assert await _resources_or_none(target_url) is None


async def _resources_or_none(database_url: str) -> int | None:
    db = Database(database_url, pool_size=1)
    try:
        async with db.read() as conn:
            exists = (await conn.exec_driver_sql("SELECT to_regclass('public.resource')")).scalar_one()
            return None if exists is None else await _resources(database_url)
    finally:
        await db.dispose()


def test_backup_refuses_sqlite(tmp_path: Path) -> None:
    env = hub_env(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", tmp_path)
    done = hub(env, "backup", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "is for PostgreSQL" in done.stderr
