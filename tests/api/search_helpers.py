"""Shared pieces of the search tests: loading a fixed data set once per module, and reading Bundles.

The ``client`` fixture empties the database for every test; a search matrix of hundreds of cases
instead loads its resources once per module (and backend) with :func:`loaded_client`, using the
session's ``hub_app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import DEFAULT_AS, clean, token_for_app

BASE = "http://hub.test/fhir"


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle that PUTs each resource under its own id."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
        ],
    }


@asynccontextmanager
async def loaded_client(app: Any, resources: list[dict[str, Any]]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on ``app`` whose database holds exactly ``resources``."""
    await clean(app)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token_for_app(app, DEFAULT_AS)}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", headers=headers) as c:
        for start in range(0, len(resources), 500):
            r = await c.post("/fhir", json=transaction(resources[start : start + 500]))
            assert r.status_code == 200, r.text
        await analyze(app)
        yield c


async def analyze(app: Any) -> None:
    """Fresh planner statistics on PostgreSQL (autovacuum would take a while to notice a bulk load)."""
    db = app.state.services.repo.db
    if not db.is_sqlite:
        async with db.write() as conn:
            await conn.execute(text("ANALYZE"))


async def search(client: httpx.AsyncClient, url: str, status: int = 200, **headers: str) -> dict[str, Any]:
    r = await client.get(f"/fhir/{url}", headers=headers)
    assert r.status_code == status, f"{url}: {r.status_code} {r.text}"
    body: dict[str, Any] = r.json()
    return body


def ids(bundle: dict[str, Any], mode: str = "match") -> set[str]:
    """``Type/id`` of the entries with search mode ``mode``."""
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", ())
        if e.get("search", {}).get("mode") == mode
    }


def ordered_ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", ()) if e["search"]["mode"] == "match"]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    for item in bundle.get("link", ()):
        if item["relation"] == relation:
            return str(item["url"])
    return None


def relative(url: str) -> str:
    """A link as a path under /fhir/ (what :func:`search` takes)."""
    assert url.startswith(BASE + "/"), url
    return url[len(BASE) + 1 :]
