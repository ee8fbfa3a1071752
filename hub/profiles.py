"""The hub's conformance package (``hub/definitions/profiles/``), stored as ordinary resources so that
``/fhir/StructureDefinition?url=...`` and friends serve it like any other data."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text

from hub.fhir import jsonio
from hub.paths import profiles_dir

log = logging.getLogger("hub.profiles")

#: PostgreSQL advisory lock key held while the package is loaded.
PACKAGE_LOCK = 0x7A6E_6875_6202

#: Types from profiles/ that are served (categories.json and tools/ are not resources).
SERVED_TYPES = frozenset(
    {
        "StructureDefinition",
        "ValueSet",
        "CodeSystem",
        "SearchParameter",
        "CapabilityStatement",
        "OperationDefinition",
        "NamingSystem",
        "ConceptMap",
    }
)


def package_resources() -> list[dict[str, Any]]:
    out = []
    for path in sorted(profiles_dir().glob("*.json")):
        data = jsonio.loads(path.read_bytes())
        if isinstance(data, dict) and data.get("resourceType") in SERVED_TYPES and data.get("id"):
            out.append(data)
    return out


async def load_conformance_package(services: Any) -> int:
    """Store each package resource that is missing or changed (by content); returns how many were written."""
    from hub.store import resources as dao

    repo = services.repo
    written = 0
    async with repo.db.write() as conn:
        if conn.dialect.name == "postgresql":
            # Several hub processes start at once (--workers, replicas): one loads the package, the
            # others wait here and then find it loaded (SQLite's write lock already serialises this).
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PACKAGE_LOCK})
        for res in package_resources():
            current = await dao.get_current(conn, res["resourceType"], res["id"])
            if current is not None and not current.deleted and current.content is not None:
                stored = jsonio.loads(current.content)
                stored.pop("meta", None)
                if stored == {k: v for k, v in res.items() if k != "meta"}:
                    continue
            await repo.update(res["resourceType"], res["id"], res, conn=conn)
            written += 1
    if written:
        log.info("Loaded %d conformance resources from the package", written)
    return written
