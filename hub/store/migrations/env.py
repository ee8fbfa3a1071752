"""Alembic environment: async engines for both SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from hub.schema import metadata

config = context.config


#: Tables whose migrations are written by hand (0002: the audit log, with its PostgreSQL triggers);
#: autogenerate leaves them alone.
HAND_WRITTEN = frozenset({"audit_log", "audit_patient", "audit_entity", "audit_checkpoint", "audit_head"})


def _include(obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object) -> bool:
    table = getattr(obj, "table", obj) if type_ != "table" else obj
    return getattr(table, "name", name) not in HAND_WRITTEN


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL for the migrations (set HUB_DATABASE_URL)")
    engine = create_async_engine(str(url), poolclass=pool.NullPool)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
