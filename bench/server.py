"""A fresh PostgreSQL database per run, and ``hub serve`` on it in a subprocess (loopback only)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.auth import hub_command

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("HUB_BENCH_PG_ADMIN_URL") or DEFAULT_ADMIN_URL


@dataclass(frozen=True, slots=True)
class BenchDatabase:
    name: str
    admin: str

    @property
    def dsn(self) -> str:
        """For asyncpg (the raw baselines)."""
        return self.admin.rsplit("/", 1)[0] + f"/{self.name}"

    @property
    def hub_url(self) -> str:
        """For the hub (SQLAlchemy URL)."""
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def create_database(admin: str | None = None, settings: dict[str, str] | None = None) -> BenchDatabase:
    """A new database; ``settings`` become its defaults (``ALTER DATABASE ... SET``), for A/B runs of
    PostgreSQL settings such as ``plan_cache_mode``."""
    import asyncpg

    admin = admin or admin_url()
    name = f"hub_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        for key, value in (settings or {}).items():
            if not key.replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"not a PostgreSQL setting name: {key!r}")
            await conn.execute(f'ALTER DATABASE "{name}" SET {key} = $${value}$$')
    finally:
        await conn.close()
    return BenchDatabase(name, admin)


async def drop_database(db: BenchDatabase) -> None:
    import asyncpg

    conn = await asyncpg.connect(db.admin, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    finally:
        await conn.close()


async def postgres_version(db: BenchDatabase) -> str:
    import asyncpg

    conn = await asyncpg.connect(db.dsn, timeout=10)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class RunningHub:
    base: str
    pid: int
    env: dict[str, str]
    workers: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def check_alive(self, during: str) -> None:
        """Fail loudly when the server is gone (a negative code is the signal that ended it)."""
        code = self.proc.poll()
        if code is not None:
            raise RuntimeError(
                f"hub serve ({self.workers} worker(s)) exited with code {code} during {during}; log: {self.log_path}"
            )


def hub_environment(db: BenchDatabase, var_dir: Path, port: int, workers: int) -> dict[str, str]:
    """The ``HUB_*`` settings of the server under test (the token CLI gets the same)."""
    return {
        "HUB_DATABASE_URL": db.hub_url,
        "HUB_PORT": str(port),
        "HUB_HOST": "127.0.0.1",
        "HUB_VAR_DIR": str(var_dir),
        "HUB_ENVIRONMENT": "test",
        "HUB_LOG_LEVEL": "info",  # uvicorn then logs a shutdown, if something ends the server
        "HUB_WORKERS": str(workers),
    }


@contextmanager
def running_hub(db: BenchDatabase, var_dir: Path, workers: int, ready_timeout: float = 90) -> Iterator[RunningHub]:
    """``hub serve`` with ``workers`` processes; yields once ``/readyz`` answers, stops it afterwards."""
    var_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = hub_environment(db, var_dir, port, workers)
    log_path = var_dir / f"hub-w{workers}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own console script
            [hub_command(), "serve"], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(proc, base, log_path, ready_timeout)
            yield RunningHub(f"{base}/fhir", proc.pid, env, workers, proc, log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"hub serve exited early:\n{log_path.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"hub serve did not become ready in {timeout:.0f} s")
        time.sleep(0.2)


__all__ = [
    "BenchDatabase",
    "RunningHub",
    "admin_url",
    "create_database",
    "drop_database",
    "hub_environment",
    "postgres_version",
    "running_hub",
]
