"""Fixtures for the deployment checks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.conftest import _pg_create, _pg_drop


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_pg_url() -> AsyncIterator[str]:
    """An empty PostgreSQL database of its own (production refuses SQLite, so the image needs this)."""
    name = f"hub_image_{uuid.uuid4().hex[:12]}"
    url = await _pg_create(name)
    try:
        yield url
    finally:
        await _pg_drop(name)
