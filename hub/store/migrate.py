"""Schema management with Alembic: ``hub db upgrade``, and the self-upgrade of the embedded default."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from hub.keyfiles import locked
from hub.settings import Settings
from hub.store.db import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (runs Alembic's async env in its own event loop)."""
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)


#: PostgreSQL advisory lock key held while a starting hub process upgrades the schema.
MIGRATION_LOCK = 0x7A6E_6875_6201  # "zn-hub" + 1


async def prepare_database(db: Database, settings: Settings) -> None:
    """The embedded SQLite default upgrades itself; PostgreSQL must be upgraded with ``hub db upgrade``
    (unless it is still empty, as in tests and first starts, when it is upgraded too).

    Several processes may start at once on one PostgreSQL (``--workers``, replicas): they take turns
    under an advisory lock, so one upgrades and the others find the schema at head."""
    if db.is_sqlite:
        database = db.url.database or ""
        if database in ("", ":memory:"):
            await upgrade_async(settings.database_url)
            return
        # A file lock beside the database: the processes of one `hub serve --workers N` take turns.
        await asyncio.to_thread(_upgrade_locked, settings.database_url, Path(database))
        return
    async with db.engine.connect() as lock:
        await lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            if settings.environment != "production":
                await upgrade_async(settings.database_url)
                return
            tables = await lock.run_sync(lambda c: inspect(c).get_table_names())
            if "resource" not in tables:
                await upgrade_async(settings.database_url)
        finally:
            await lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            await lock.commit()


def _upgrade_locked(database_url: str, path: Path) -> None:
    with locked(path, f".{path.name}.migrate.lock"):
        upgrade(database_url)


async def database_problem(database_url: str) -> str | None:
    """Why the database at ``database_url`` cannot be used by a command, in one line; ``None`` when it can.

    Never creates anything: a missing SQLite file stays missing, an empty PostgreSQL database stays
    empty (``hub db upgrade`` or ``hub serve`` create the schema).
    """
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:"):
            return f"{shown}: an in-memory database holds nothing to work on"
        if not Path(path).is_file():
            return f"no hub database at {Path(path).resolve()} (start the hub once, or run `hub db upgrade`)"
    db = Database(database_url, pool_size=1)
    try:
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    except Exception as exc:  # noqa: BLE001 - any driver error is "cannot be used", said in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot open the hub database at {shown}: {first}"
    finally:
        await db.dispose()
    if "alembic_version" not in tables or "resource" not in tables:
        return f"the database at {shown} has no hub schema (run `hub db upgrade`)"
    return None
