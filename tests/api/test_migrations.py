"""The Alembic migrations create exactly the schema the code declares, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.schema import metadata


async def test_migrated_schema_matches_the_metadata(hub_app: Any) -> None:
    """The session's database was upgraded by the app's lifespan (``hub db upgrade``)."""
    engine = hub_app.state.services.repo.db.engine

    def diff(sync_conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(ctx, metadata)

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_audit_event_text_is_compressed_with_lz4_on_postgresql(hub_app: Any, backend: str) -> None:
    """Migration 0009: an audit record's JSON (about 2 kB, so compressed) costs half the CPU with lz4."""
    from sqlalchemy import text

    engine = hub_app.state.services.repo.db.engine
    if backend != "postgresql":
        assert engine.dialect.name == "sqlite"  # nothing to choose there
        return
    async with engine.connect() as conn:
        available = (
            await conn.execute(
                text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
            )
        ).scalar()
        method = (
            await conn.execute(
                text(
                    "SELECT attcompression::text FROM pg_attribute "
                    "WHERE attrelid = 'audit_log'::regclass AND attname = 'event'"
                )
            )
        ).scalar()
    assert available  # the PostgreSQL the tests run on has it
    assert method == "l"
