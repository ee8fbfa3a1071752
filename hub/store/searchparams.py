"""The search parameters in effect: the package's (the seed) plus the SearchParameter resources
stored in the hub, as in HAPI (a SearchParameter created, changed or deleted through the API takes
effect for new writes and searches at once; existing resources are indexed by it after
``$reindex``).

Several hub processes share one database, so each process polls (:meth:`LiveSearchParameters.run`,
every ``refresh_ms``) a cheap signature of the ``SearchParameter`` rows: their count, the sum of
their versions and their latest change (every create, update and delete moves it), and reloads them
only when it moved. Requests never wait for that look. A SearchParameter written by this process
is taken in as soon as its transaction commits (:meth:`Repository.writing` asks
:meth:`LiveSearchParameters.refresh_after`), before the answer to its write leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlalchemy import false, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.fhir import jsonio
from hub.fhir.searchparam_check import check_not_redefining, check_search_parameter
from hub.fhir.searchparams import Registry, load_registry, registry_with
from hub.store.db import Database
from hub.store.tables import resource

log = logging.getLogger(__name__)

Signature = tuple[int, int, int]
#: The resource type whose instances define search parameters.
DEFINITION_TYPE = "SearchParameter"


class LiveSearchParameters:
    """The registry in effect; ``on_change`` callbacks receive each new one (the search engine)."""

    def __init__(self, resource_types: Collection[str], *, refresh_ms: int = 1000) -> None:
        self.registry: Registry = load_registry()
        self.resource_types = resource_types
        self.refresh_ms = refresh_ms
        self.on_change: list[Callable[[Registry], None]] = []
        #: How many SearchParameter writes this process has made (see :meth:`refresh_after`).
        self.writes = 0
        self._signature: Signature | None = None
        self._stopped = asyncio.Event()

    def written(self) -> None:
        """A SearchParameter was written here (its transaction has not committed yet)."""
        self.writes += 1

    def check(self, definition: Mapping[str, Any]) -> None:
        """Refuse (422) a SearchParameter that cannot take effect."""
        check_search_parameter(definition, self.resource_types, lambda url: self.registry.by_url(url) is not None)
        check_not_redefining(definition, load_registry())

    async def refresh_after(self, db: Database, writes_before: int) -> None:
        """After a commit: take the stored SearchParameters in if the transaction wrote one."""
        if self.writes == writes_before:
            return
        try:
            await self.refresh(db)
        except Exception:  # noqa: BLE001 - the write has committed; the poll takes it in later
            log.warning("Could not take in the SearchParameter just written", exc_info=True)

    async def refresh(self, db: Database) -> None:
        """Take in the stored SearchParameters if they changed since the last look."""
        async with db.read() as conn:
            await self.load(conn)

    async def run(self, db: Database) -> None:
        """Look every ``refresh_ms`` until :meth:`stop` (a SearchParameter another process wrote)."""
        while not self._stopped.is_set():
            try:
                await self.refresh(db)
            except Exception:  # noqa: BLE001 - a missed look is retried; the registry in effect stays
                log.warning("Could not look at the stored SearchParameters", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.refresh_ms / 1000)

    def stop(self) -> None:
        self._stopped.set()

    async def load(self, conn: AsyncConnection) -> None:
        """Read the signature and, when it moved, every stored SearchParameter."""
        r = resource
        row = (
            await conn.execute(
                select(
                    func.count(), func.coalesce(func.sum(r.c.version), 0), func.coalesce(func.max(r.c.last_updated), 0)
                ).where(r.c.res_type == DEFINITION_TYPE)
            )
        ).one()
        signature = (int(row[0]), int(row[1]), int(row[2]))
        if signature == self._signature:
            return
        contents = (
            (
                await conn.execute(
                    select(r.c.content).where(r.c.res_type == DEFINITION_TYPE, r.c.deleted == false()).order_by(r.c.pid)
                )
            )
            .scalars()
            .all()
        )
        stored = [jsonio.loads(c) for c in contents if c]
        self._signature = signature
        self.registry = registry_with(stored)
        for notify in self.on_change:
            notify(self.registry)
        log.info("Search parameters: %d stored definitions in effect", len(stored))


__all__ = ["DEFINITION_TYPE", "LiveSearchParameters"]
