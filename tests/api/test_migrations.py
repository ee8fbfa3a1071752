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
