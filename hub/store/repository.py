"""The repository: the FHIR interactions on stored resources, with their rules.

This is the one code path every read and write takes (the API layer, Bundles and operations all
call it): versions and ``If-Match``, conditional create/update/delete, PATCH, history. Storage
details live in :mod:`hub.store.resources`, search SQL in :mod:`hub.store.search`.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from anyio.to_thread import run_sync
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.fhir import jsonio
from hub.fhir.errors import (
    BadRequest,
    Conflict,
    FhirError,
    Forbidden,
    Gone,
    Issue,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from hub.fhir.ids import check_id
from hub.fhir.instants import now_us, to_iso
from hub.fhir.integers import to_int
from hub.fhir.parse import check_resource
from hub.fhir.query import Criterion, SearchQuery, TokenValue
from hub.store import deferred, pg_batch
from hub.store import resources as dao
from hub.store.db import Database, on_its_own
from hub.store.direct import DriverConnection
from hub.store.pg_writes import Appendix
from hub.store.policy import OnStateChange, StorePolicy, Verdict, Visible, WriteRules
from hub.store.resources import NO_AUTHORSHIP, Authorship, IndexRows, Stored
from hub.store.searchparams import DEFINITION_TYPE, LiveSearchParameters
from hub.store.trail import Trail

#: How often a write without If-Match is retried when another writer got there first.
MAX_WRITE_ATTEMPTS = 20

Indexer = Callable[[dict[str, Any]], IndexRows]
#: Profile validation on write: returns the issues (errors make the write fail with 422).
WriteValidator = Callable[[dict[str, Any]], Sequence[Issue]]
#: Maintains derived facts (care relations, consent rules, grants, authorship) in the write's
#: transaction: (conn, stored, resource or None for a delete, author URA, writer=the repository's
#: access policy). (The outbox's hook, hub.store.policy.OnStateChange, receives every state change.)
AfterWrite = Callable[..., Awaitable[None]]
#: Whether the after-write hook derives anything that changes for a write: (the version about to be
#: written, its resource or None for a deletion, the version it replaces or None for a create) -> bool
#: (hub.access.facts / hub.workflows.derive ``derives_anything``).
AfterWriteNeeded = Callable[[Stored, dict[str, Any] | None, Stored | None], bool]
#: What the hub keeps right in a resource before it is stored: (new, previous version or None, the
#: version's instant) -> the resource to store (hub.workflows.overdracht.amend: Task bookkeeping).
Prepare = Callable[[dict[str, Any], dict[str, Any] | None, str], dict[str, Any]]
#: The context of a write's checks when there is none to set up (:meth:`Repository._concerning`).
_NOTHING = nullcontext()
#: Version numbers are stored as INTEGER: a larger one names no version.
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What a write did: the stored version, the HTTP status, and the resource as stored."""

    stored: Stored
    status: int
    resource: dict[str, Any] | None = None
    message: str = ""


@dataclass(slots=True)
class HistoryPage:
    entries: list[Stored]
    next_cursor: int | None


class Matcher:
    """Runs searches and finds the resources a conditional interaction's criteria select (the
    search engine, :class:`hub.store.search.SearchEngine`, is the one implementation)."""

    async def match(
        self, conn: AsyncConnection, res_type: str, criteria: str, limit: int = 2, *, visible: Visible
    ) -> list[Stored]:
        raise NotImplementedError

    async def execute(
        self,
        conn: AsyncConnection | DriverConnection,
        query: Any,
        *,
        visible: Visible,
        local_base: str | None = None,
        with_patients: bool = False,
        named: tuple[str, Sequence[str]] | None = None,
    ) -> Any:
        """A page of a :class:`hub.fhir.query.SearchQuery` (a ``SearchPage``); ``with_patients``: with
        the clients of every resource it returns (``SearchPage.patients``); ``named``: (system, values)
        of identifiers whose Patients it may look up alongside (``SearchPage.named``)."""
        raise NotImplementedError

    async def everything_on_driver(
        self, conn: DriverConnection, query: Any, *, visible: Visible, local_base: str | None
    ) -> Any:
        """A page of ``$everything``'s search (or of any plan-stable search with one include round) with
        its clients (``SearchPage.patients``), run on a lookup connection's driver (:mod:`hub.store.direct`);
        None when this query is not one it answers (then :meth:`execute` does)."""
        return None

    def plan_stable(self, query: Any, local_base: str | None = None) -> bool:
        """Whether the query's statements have one right plan whatever their values, so they may run
        on a connection that keeps generic plans (:meth:`Database.lookup`)."""
        return False


class Repository:
    """FHIR interactions over a :class:`Database`; hold one per app, bound to the hub's own access
    policy (hub.access.decision.SYSTEM), and bind a copy to each caller's (:meth:`with_policy`)."""

    def __init__(
        self,
        db: Database,
        indexer: Indexer,
        matcher: Matcher,
        *,
        policy: StorePolicy,
        validator: WriteValidator | None = None,
        clock: Callable[[], int] = now_us,
        categorize: Callable[[dict[str, Any]], str] | None = None,
        after_write: AfterWrite | None = None,
        write_rules: WriteRules | None = None,
        trail: Trail | None = None,
        outbox: Any = None,
        on_state_change: OnStateChange | None = None,
        prepare: Prepare | None = None,
        search_params: LiveSearchParameters | None = None,
        after_write_needed: AfterWriteNeeded | None = None,
    ) -> None:
        """``after_write_needed``: whether ``after_write`` derives anything for a write (None: for
        every write); a write it derives nothing for, whose workflow verdict keeps nothing, writes
        only its own statement (:meth:`_alone`)."""
        self.db = db
        self.indexer = indexer
        self.matcher = matcher
        self.validator = validator
        self.clock = clock
        self.categorize = categorize or (lambda _resource: "medisch")
        self.after_write = after_write
        #: The access decision every operation obeys: a caller's (hub.access.policy.AccessPolicy) or
        #: the hub's own (hub.access.decision.SystemPolicy).
        self.policy = policy
        #: The workflow rules a caller's write must also pass (hub.workflows.check.write_rules).
        self.write_rules = write_rules
        #: The request's audit trail (hub.audit.trail.AuditTrail): writes are logged in their own
        #: transaction, reads note what they returned.
        self.trail = trail
        #: The transactional outbox (hub.events.outbox.Outbox): every write stores its event with
        #: it, in the same statement(s) and transaction.
        self.outbox = outbox
        #: The outbox hook (hub.events): called with each StateChange inside the write transaction.
        self.on_state_change = on_state_change
        self.prepare = prepare
        #: The search parameters in effect (the seed and the stored SearchParameters): a written
        #: SearchParameter is checked against it, and taken in when its transaction commits.
        self.search_params = search_params
        self.after_write_needed = after_write_needed

    def with_policy(self, policy: StorePolicy, trail: Trail | None = None) -> Repository:
        """This repository, bound to one caller's access policy (every operation then obeys it)
        and to the request's audit trail."""
        bound = copy.copy(self)
        bound.policy = policy
        bound.trail = trail
        return bound

    @property
    def visible(self) -> Visible:
        """The SQL access filter for searches."""
        return self.policy.sql_filter

    @property
    def author_ura(self) -> str | None:
        return self.policy.author_ura

    async def match(self, conn: AsyncConnection, res_type: str, criteria: str, limit: int = 2) -> list[Stored]:
        """Conditional criteria, seen through the caller's eyes (invisible resources do not match).
        Criteria of one identifier that no current resource of the type carries at all (whoever may
        see it) match nothing without a search: a key lookup instead of the search's statement with
        its access filter (a transaction Bundle registering a client: its Patient's ``ifNoneExist``)."""
        criterion = identifier_criterion(criteria) if self._identifier_indexed(res_type) else None
        if criterion is not None and not await dao.identifier_in_use(conn, res_type, *criterion):
            return []
        return await self.matcher.match(conn, res_type, criteria, limit, visible=self.visible)

    def _identifier_indexed(self, res_type: str) -> bool:
        """Whether ``identifier`` of ``res_type`` is an indexed token parameter (so a search for it
        reads ``idx_token``, as :func:`hub.store.resources.identifier_in_use` does)."""
        param = self.search_params.registry.get(res_type, "identifier") if self.search_params is not None else None
        return param is not None and param.type == "token" and param.indexed

    async def match_one(
        self,
        conn: AsyncConnection,
        res_type: str,
        criteria: str,
        *,
        what: str | None = None,
        code: str = "multiple-matches",
        expression: str | None = None,
    ) -> Stored | None:
        """The conditional rule (:func:`one_of`) on the criteria, seen through the caller's eyes."""
        found = await self.match(conn, res_type, criteria)
        return one_of(found, res_type, what or f"the criteria '{criteria}'", code=code, expression=expression)

    async def search(self, query: Any, *, local_base: str | None, conn: AsyncConnection | None = None) -> Any:
        """A page of a search (:class:`hub.fhir.query.SearchQuery` -> ``SearchPage``) through the
        caller's access filter; the clients whose data it returned are noted in the audit trail."""
        stable = self.matcher.plan_stable(query, local_base)
        if conn is None and stable and query.total != "estimate" and self.db.direct_lookups:
            return await self._search_direct(query, local_base)
        async with self.reading(conn, lookup=stable) as c:
            audited = self.trail is not None and self.trail.enabled
            page = await self.matcher.execute(
                c, query, visible=self.visible, local_base=local_base, with_patients=audited
            )
            if self.trail is not None:  # who saw which clients' data goes in the audit record
                await self.trail.note(c, page.matches + page.included, by_pid=page.patients)
        return page

    async def _search_direct(self, query: Any, local_base: str | None) -> Any:
        """:meth:`search` with its statements run on a lookup connection's driver (the read-by-id
        way, :mod:`hub.store.direct`): the same statements and access filter, a fraction of the
        CPU. The page's statements also name each returned resource's clients, so noting them in
        the audit trail needs no statement; and the page statement looks up the clients the request
        named by identifier (a BSN) that the trail has yet to find (:attr:`Trail.unresolved_identifiers`)."""
        audited = self.trail is not None and self.trail.enabled
        async with self.db.lookup_driver() as fairy:
            driver = DriverConnection(fairy, self.db.lookup_engine.dialect)
            page = None
            if query.includes:  # the page and its include round in one statement, where that path answers it
                page = await self.matcher.everything_on_driver(
                    driver, query, visible=self.visible, local_base=local_base
                )
            if page is None:
                named = self.trail.unresolved_identifiers if self.trail is not None and audited else None
                page = await self.matcher.execute(
                    driver, query, visible=self.visible, local_base=local_base, with_patients=audited, named=named
                )
                if page.named is not None and self.trail is not None:  # the named clients, found by the page statement
                    self.trail.note_named_found(page.named)
        if self.trail is not None and audited:
            found = page.matches + page.included
            if page.patients is not None and all(s.pid in page.patients for s in found):
                self.trail.note_found(found, page.patients)
            else:  # (the statements name every row's clients; looked up should one be missing)
                async with self.reading(None, lookup=True) as c:
                    await self.trail.note(c, found, by_pid=page.patients)
        return page

    async def everything(
        self, query: Any, patient_id: str, *, local_base: str | None, conn: AsyncConnection | None = None
    ) -> Any:
        """``Patient/{id}/$everything``: a page of the compartment search ``query``; an unknown
        Patient, or one the caller may not see, is a 404 on the first page."""
        page = None
        if conn is None and self.db.direct_lookups:
            async with self.db.lookup_driver() as fairy:
                page = await self.matcher.everything_on_driver(
                    DriverConnection(fairy, self.db.lookup_engine.dialect),
                    query,
                    visible=self.visible,
                    local_base=local_base,
                )
            if page is not None and self.trail is not None:  # who saw which clients' data: known per row
                self.trail.note_found(page.matches + page.included, page.patients)
        if page is None:
            page = await self.search(query, local_base=local_base, conn=conn)
        first = query.offset == 0 and query.cursor is None
        if not page.matches and first:
            async with self.reading(conn, lookup=True) as c:  # (by id: a lookup)
                if not await self.exists("Patient", patient_id, conn=c):
                    raise NotFound(f"Patient/{patient_id} is not known", expression="Patient")
        return page

    async def exists(
        self, res_type: str, res_id: str, *, local_base: str | None = None, conn: AsyncConnection | None = None
    ) -> bool:
        """Whether the resource exists for this caller (the same access filter: hidden means
        unknown); nothing is noted in the audit trail."""
        probe = SearchQuery(res_type, count=1, total="none")
        probe.criteria.append(Criterion(res_type, "_id", "token", None, (TokenValue(None, res_id),)))
        async with self.reading(conn) as c:
            found = await self.matcher.execute(c, probe, visible=self.visible, local_base=local_base)
        return bool(found.matches)

    async def _check_read(self, conn: AsyncConnection, stored: Stored, seen: bool | None = None) -> None:
        """NotFound unless the caller may see ``stored`` (``seen``: already decided, see :meth:`_current`)."""
        if self.policy.internal or seen:
            return
        if seen is not None:
            if self.trail is not None:  # a denied access is logged against the client it concerned
                await self.trail.note(conn, [stored])
            raise NotFound(f"{stored.res_type}/{stored.res_id} is not known", expression=stored.res_type)
        try:
            await self.policy.check_read(conn, stored)
        except NotFound:
            if self.trail is not None:  # a denied access is logged against the client it concerned
                await self.trail.note(conn, [stored])
            raise

    async def reindex(self, res_type: str | None = None, batch: int = 500) -> int:
        """Rebuild the index rows of every current resource (of ``res_type``) with the search
        parameters in effect now; returns how many resources were indexed."""
        from hub.store.reindex import reindex

        if self.search_params is not None:  # with what is stored now, also another process's change
            await self.search_params.refresh(self.db)
        return await reindex(self.db, self.indexer, batch, res_type=res_type)

    # -- transactions -------------------------------------------------------------------------

    @asynccontextmanager
    async def writing(self, conn: AsyncConnection | None, *, keyed: bool = False) -> AsyncIterator[AsyncConnection]:
        """Join the caller's transaction, or run in a new write transaction (``keyed``: one
        resource by id, no search: see :meth:`Database.write`)."""
        if conn is not None:
            yield conn
        else:
            writes = self.search_params.writes if self.search_params is not None else 0
            try:
                async with self.db.write(keyed=keyed) as own, _own_write(own, keyed and not self.db.is_sqlite):
                    yield own
                    if self.trail is not None:
                        # The owed facts first: the audit append takes the chain head's lock, held
                        # until the commit, so it comes last.
                        await deferred.settle(own)
                        await self.trail.flush(own)
            finally:
                if self.trail is not None:
                    self.trail.discard()
            if self.search_params is not None:  # a SearchParameter it wrote takes effect now
                await self.search_params.refresh_after(self.db, writes)

    @asynccontextmanager
    async def transaction(self, creates: int = 0) -> AsyncIterator[AsyncConnection]:
        """A new write transaction for several interactions (a transaction Bundle): pass the
        connection as ``conn`` to each; the audit records of its writes commit with it. ``creates``:
        how many creates it will make; their rows are then written together where the database
        allows (:mod:`hub.store.pg_batch`)."""
        async with self.writing(None) as conn:
            if creates > 1:
                pg_batch.start(conn, creates)
            yield conn

    @asynccontextmanager
    async def reading(self, conn: AsyncConnection | None, *, lookup: bool = False) -> AsyncIterator[AsyncConnection]:
        """``conn``, or a reading connection of our own; ``lookup`` for statements that find rows by
        key (:meth:`Database.lookup`)."""
        if conn is not None:
            yield conn
        else:
            async with self.db.lookup() if lookup else self.db.read() as own:
                yield own

    @asynccontextmanager
    async def keyed(self, conn: AsyncConnection | None) -> AsyncIterator[AsyncConnection | DriverConnection]:
        """``conn``, or a lookup connection of our own for the key lookups of the hub's bookkeeping
        (``hub.store.resources``' ``existing_ids``, ``patients_by_identifier``): the driver's when
        nothing observes the lookup pool's statements (:mod:`hub.store.direct`)."""
        if conn is None and self.db.direct_lookups:
            async with self.db.lookup_driver() as fairy:
                yield DriverConnection(fairy, self.db.lookup_engine.dialect)
        else:
            async with self.reading(conn, lookup=True) as own:
                yield own

    # -- reads ----------------------------------------------------------------------------------

    async def read(self, res_type: str, res_id: str, *, conn: AsyncConnection | None = None) -> Stored:
        """The current version: one statement fetches it, decides visibility and names its client(s)."""
        if conn is None and self.db.direct_lookups:  # a connection of our own: the driver's way
            async with self.db.lookup_driver() as fairy:
                found = await dao.get_current_checked_direct(
                    fairy, self.db.lookup_engine.dialect, res_type, res_id, self.policy
                )
            stored, visible, patients = found
            if stored is not None and self.trail is not None:
                if patients is None:  # more than two clients: looked up apart
                    async with self.db.lookup() as c:
                        await self.trail.note(c, [stored], None)
                else:
                    self.trail.note_known(stored, patients)
        else:
            async with self.reading(conn, lookup=True) as c:
                stored, visible, patients = await dao.get_current_checked(c, res_type, res_id, self.policy)
                if stored is not None and self.trail is not None:
                    await self.trail.note(c, [stored], patients)
        if stored is not None and not visible:
            raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
        if stored is None:
            raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
        if stored.deleted:
            raise Gone(f"{res_type}/{res_id} was deleted (version {stored.version})", headers=_etag(stored))
        return stored

    async def vread(self, res_type: str, res_id: str, version: str, *, conn: AsyncConnection | None = None) -> Stored:
        # One answer for every miss (no such resource, no such version, a version the caller may
        # not see), so neither existence nor the number of versions can be learned.
        missing = NotFound(f"{res_type}/{res_id}/_history/{version} is not known", expression=res_type)
        number = to_int(version, MAX_VERSION)
        if number is None:
            raise missing
        async with self.reading(conn, lookup=True) as c:
            stored, visible, patients = await dao.get_version_checked(c, res_type, res_id, number, self.policy)
            if stored is not None and self.trail is not None:
                if visible and not stored.deleted:
                    await self.trail.note(c, [stored], patients)
                elif not visible:  # a denied access is logged against the client it concerned
                    await self.trail.note(c, [stored], patients)
        if stored is None or not visible:
            raise missing
        if stored.deleted:
            raise Gone(f"Version {version} of {res_type}/{res_id} is a deletion", headers=_etag(stored))
        return stored

    # -- writes ---------------------------------------------------------------------------------

    async def create(
        self,
        resource: dict[str, Any],
        *,
        if_none_exist: str | None = None,
        conn: AsyncConnection | None = None,
        assigned_id: str | None = None,
    ) -> WriteOutcome:
        """Create with a server-assigned id (or ``assigned_id`` for a transaction's urn:uuid entries)."""
        res_type = resource["resourceType"]
        async with self.writing(conn, keyed=not if_none_exist) as c:
            if if_none_exist:
                match = await self.match_one(
                    c, res_type, if_none_exist, what=f"If-None-Exist '{if_none_exist}'", code="duplicate"
                )
                if match is not None:
                    return WriteOutcome(match, 200, None, "Matched an existing resource; nothing created")
            res_id = assigned_id or str(uuid.uuid4())
            return await self._insert(c, resource, res_id, "POST", server_id=True)

    async def update(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
        conn: AsyncConnection | None = None,
        method: str = "PUT",
    ) -> WriteOutcome:
        """Update (or create with the client's id); ``If-Match`` makes it a compare-and-set."""
        check_id(res_id)
        body_id = resource.get("id")
        if body_id is None:
            raise BadRequest(
                "The resource in an update must carry its id", code="required", expression=f"{res_type}.id"
            )
        if body_id != res_id:
            raise BadRequest(
                f"The id in the body ('{body_id}') does not match the id in the URL ('{res_id}')",
                expression=f"{res_type}.id",
            )
        expected = parse_etag(if_match) if if_match is not None else None
        for _attempt in range(MAX_WRITE_ATTEMPTS):
            try:
                async with self.writing(conn, keyed=True) as c:
                    current, seen = await self._current(c, res_type, res_id)
                    if current is None:
                        if expected is not None:
                            raise PreconditionFailed(
                                f"If-Match {if_match}: {res_type}/{res_id} does not exist", expression=res_type
                            )
                        return await self._insert(c, resource, res_id, method)
                    if expected is not None and expected != current.version:
                        raise PreconditionFailed(
                            f"If-Match {if_match} does not match the current version {current.etag} of "
                            f"{res_type}/{res_id}",
                            headers=_etag(current),
                        )
                    outcome = await self._next_version(c, current, resource, method, seen=seen)
                    if outcome is not None:
                        return outcome
                    if expected is not None or conn is not None:
                        raise PreconditionFailed(
                            f"{res_type}/{res_id} was changed by another request; read it again",
                            code="conflict",
                        )
            except IntegrityError:
                if conn is not None:
                    raise Conflict(f"{res_type}/{res_id} was created concurrently") from None
                continue  # created concurrently with us: try again as an update
        raise Conflict(f"{res_type}/{res_id} is being changed by many writers at once; try again")

    async def patch(
        self,
        res_type: str,
        res_id: str,
        apply: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        if_match: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> WriteOutcome:
        """Apply ``apply`` (a JSON Patch or FHIRPath Patch) to the current version and store the result."""
        expected = parse_etag(if_match) if if_match is not None else None
        for _attempt in range(MAX_WRITE_ATTEMPTS):
            async with self.writing(conn, keyed=True) as c:
                current, seen = await self._current(c, res_type, res_id)
                if current is None:
                    raise NotFound(f"{res_type}/{res_id} is not known")
                async with self._concerning(c, current):
                    await self._check_read(c, current, seen)
                if current.deleted:
                    raise Gone(f"{res_type}/{res_id} was deleted")
                if expected is not None and expected != current.version:
                    raise PreconditionFailed(
                        f"If-Match {if_match} does not match the current version {current.etag}",
                        headers=_etag(current),
                    )
                # On a worker thread: a patch may copy megabytes, and its result is checked like a body.
                patched = await run_sync(_patched, apply, current.content or "{}", res_type, res_id)
                outcome = await self._next_version(c, current, patched, "PATCH", seen=True)
                if outcome is not None:
                    return outcome
                if expected is not None or conn is not None:
                    raise PreconditionFailed(f"{res_type}/{res_id} was changed by another request")
        raise Conflict(f"{res_type}/{res_id} is being changed by many writers at once; try again")

    async def delete(
        self, res_type: str, res_id: str, *, conn: AsyncConnection | None = None, if_match: str | None = None
    ) -> WriteOutcome | None:
        """Logical delete; None when it was deleted already. An id never used and an id the caller
        may not see are both "not found"."""
        check_id(res_id)
        expected = parse_etag(if_match) if if_match is not None else None
        for _attempt in range(MAX_WRITE_ATTEMPTS):
            async with self.writing(conn, keyed=True) as c:
                current, seen = await self._current(c, res_type, res_id)
                if current is None:
                    # The same answer as for a resource the caller may not see.
                    raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
                async with self._concerning(c, current):
                    await self._check_read(c, current, seen)
                    if current.deleted:
                        if expected is not None:
                            raise PreconditionFailed(f"If-Match {if_match}: {res_type}/{res_id} does not exist")
                        return None
                    patients, verdict = await self._check_delete(c, current)
                if expected is not None and expected != current.version:
                    raise PreconditionFailed(
                        f"If-Match {if_match} does not match the current version {current.etag}",
                        headers=_etag(current),
                    )
                event = None
                if self.outbox is not None:
                    event = await self.outbox.event(c, res_type, None, current, patients)
                when = self._tick(current)
                appendix = None
                version = Stored(current.pid, res_type, res_id, current.version + 1, when, True, None, "DELETE")
                if self._alone(c, version, None, verdict, current):
                    appendix = self._appendix(version, 200, patients)
                stored = await dao.write_version(c, current, None, when, "DELETE", None, event=event, alone=appendix)
                if stored is not None:
                    await self._record(c, stored, verdict)
                    await self._after(c, stored, None, 200, patients, appendix)
                    return WriteOutcome(stored, 200, None, f"Deleted {res_type}/{res_id}")
                if expected is not None or conn is not None:
                    raise PreconditionFailed(f"{res_type}/{res_id} was changed by another request")
        raise Conflict(f"{res_type}/{res_id} is being changed by many writers at once; try again")

    # -- conditional forms ----------------------------------------------------------------------

    async def conditional_update(
        self,
        res_type: str,
        criteria: str,
        resource: dict[str, Any],
        *,
        conn: AsyncConnection | None = None,
        if_match: str | None = None,
    ) -> WriteOutcome:
        """PUT Type?criteria: no match creates, one match updates it, several are a 412."""
        async with self.writing(conn) as c:
            target = await self.match_one(c, res_type, criteria)
            if target is None:
                body_id = resource.get("id")
                if body_id:
                    return await self.update(res_type, body_id, resource, conn=c, if_match=if_match)
                return await self._insert(c, resource, str(uuid.uuid4()), "PUT")
            body_id = resource.get("id")
            if body_id and body_id != target.res_id:
                raise BadRequest(
                    f"The body's id '{body_id}' differs from the matched {res_type}/{target.res_id}",
                    expression=f"{res_type}.id",
                )
            resource = {**resource, "id": target.res_id}
            return await self.update(res_type, target.res_id, resource, conn=c, if_match=if_match)

    async def conditional_delete(
        self, res_type: str, criteria: str, *, conn: AsyncConnection | None = None
    ) -> WriteOutcome | None:
        """DELETE Type?criteria: none is a no-op, one is deleted, several are a 412."""
        async with self.writing(conn) as c:
            target = await self.match_one(c, res_type, criteria)
            if target is None:
                return None
            return await self.delete(res_type, target.res_id, conn=c)

    async def conditional_patch(
        self,
        res_type: str,
        criteria: str,
        apply: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        conn: AsyncConnection | None = None,
        if_match: str | None = None,
    ) -> WriteOutcome:
        async with self.writing(conn) as c:
            target = await self.match_one(c, res_type, criteria, code="conflict")
            if target is None:
                raise NotFound(f"The criteria '{criteria}' match no {res_type}")
            return await self.patch(res_type, target.res_id, apply, conn=c, if_match=if_match)

    # -- history --------------------------------------------------------------------------------

    async def history(
        self,
        *,
        res_type: str | None = None,
        res_id: str | None = None,
        since: int | None = None,
        at: int | None = None,
        cursor: int | None = None,
        count: int = 20,
        conn: AsyncConnection | None = None,
    ) -> HistoryPage:
        """A page of versions, newest first; ``cursor`` (a history row id) continues a previous page."""
        query = dao.history_query(
            res_type=res_type,
            res_id=res_id,
            since=since,
            at=at,
            before_hid=cursor,
            visible=self.policy.history_filter,
        )
        async with self.reading(conn) as c:
            if res_id and res_type:
                current = await dao.get_current(c, res_type, res_id)
                if current is None:
                    raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
                if not self.policy.internal and not await dao.any_version_visible(c, current.pid, self.policy):
                    # No version the caller may see: the same answer as for an unknown id.
                    if self.trail is not None:
                        await self.trail.note(c, [current])
                    raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
            if not self.policy.internal:
                await deferred.settle(c)  # the access facts this transaction's writes owe
            rows = (await c.execute(query.limit(count + 1))).all()
            page = rows[:count]
            entries = [dao.stored_from_history(r) for r in page]
            if self.trail is not None and entries:
                await self.trail.note_versions(c, entries, [r[0] for r in page])
        next_cursor = rows[count][0] if len(rows) > count else None
        return HistoryPage(entries, next_cursor)

    # -- internals ------------------------------------------------------------------------------

    async def _current(self, conn: AsyncConnection, res_type: str, res_id: str) -> tuple[Stored | None, bool | None]:
        """The current version a write replaces, and whether the caller may see it (None: not yet
        decided). When the transaction owes no access facts (a single write), one statement reads
        it, decides that, and reads what the write checks will ask about it (its creators, the
        policy's target facts); else the write's checks decide it once the facts it depends on are
        settled (:meth:`_concerning`)."""
        if self.policy.internal or deferred.owed(conn):
            return await dao.get_current(conn, res_type, res_id), None
        # (first in its transaction: outside it, so that a write made alone needs no BEGIN)
        async with _on_its_own_if_own(conn):
            stored, visible = await dao.get_current_for_write(conn, res_type, res_id, self.policy)
        return stored, (visible if stored is not None else None)

    def _alone(
        self,
        conn: AsyncConnection,
        version: Stored,
        resource: dict[str, Any] | None,
        verdict: Verdict | None,
        replaced: Stored | None,
    ) -> bool:
        """Whether the write of ``version`` (``resource``; None: a deletion; replacing ``replaced``,
        None for a create) about to be made is all its transaction will write: our own transaction
        of one write by id (PostgreSQL), owing no facts, with no state change for the outbox hook,
        nothing derived after it that changes, and no audit record waiting. Then its one statement
        carries its audit record and commits on its own (:class:`hub.store.pg_writes.Appendix`)."""
        return (
            _OWN_WRITE in conn.info
            and not deferred.owed(conn)
            and (verdict is None or verdict.change is None)
            and (
                self.after_write is None
                or (self.after_write_needed is not None and not self.after_write_needed(version, resource, replaced))
            )
            and (self.trail is None or not self.trail.pending)
        )

    def _appendix(self, version: Stored, status: int, patients: Sequence[str]) -> Appendix:
        """What a write made alone carries: its audit record (:meth:`Trail.write_appendix`), if any."""
        appended = self.trail.write_appendix(version, status, patients) if self.trail is not None else None
        return appended if appended is not None else Appendix()

    async def _after(
        self,
        conn: AsyncConnection,
        stored: Stored,
        resource: dict[str, Any] | None,
        status: int,
        patients: Sequence[str],
        appendix: Appendix | None,
    ) -> None:
        """After a write: the derived facts and the audit record, unless the write was made alone
        (then it has none, :meth:`_alone`, and its record went in with it)."""
        if appendix is not None and appendix.used:
            if self.trail is not None and appendix.shape is not None:
                self.trail.appended(appendix, stored, patients)
            return
        if self.after_write is not None:
            await self.after_write(conn, stored, resource, self.author_ura, writer=self.policy)
        if self.trail is not None:
            await self.trail.log_write(conn, stored, status, patients)

    def _tick(self, current: Stored | None = None) -> int:
        """A timestamp for a new version: now, but never before the version it replaces."""
        now = self.clock()
        if current is not None and now <= current.last_updated:
            now = current.last_updated + 1
        return now

    def _stamp(self, resource: dict[str, Any], res_id: str, version: int, when: int) -> tuple[dict[str, Any], str]:
        """Set id and meta (versionId, lastUpdated) and serialize: this is what is stored and served."""
        meta = dict(resource.get("meta") or {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = to_iso(when)
        stamped = {"resourceType": resource["resourceType"], "id": res_id, "meta": meta}
        stamped.update((k, v) for k, v in resource.items() if k not in ("resourceType", "id", "meta"))
        return stamped, jsonio.dumps(stamped).decode()

    def _check_profiles(self, resource: dict[str, Any]) -> None:
        if self.search_params is not None and resource["resourceType"] == DEFINITION_TYPE:
            self.search_params.check(resource)  # a definition that cannot take effect is a 422
        if self.validator is None:
            return
        issues = list(self.validator(resource))
        errors = [i for i in issues if i.severity in ("error", "fatal")]
        if errors:
            raise Unprocessable(errors[0].diagnostics, issues=errors)

    async def _insert(
        self, conn: AsyncConnection, resource: dict[str, Any], res_id: str, method: str, *, server_id: bool = False
    ) -> WriteOutcome:
        """Version 1 of a resource whose id is new (server-assigned: ``server_id``, or checked unused by
        the caller; a concurrent insert of the same id fails on the unique constraint)."""
        check_id(res_id)
        when = self._tick()
        if self.prepare is not None:
            resource = self.prepare(resource, None, to_iso(when))
        stamped, content = self._stamp(resource, res_id, 1, when)
        rows = self.indexer(stamped)
        category = self.categorize(stamped)
        # A single create's statement can carry the care condition (PostgreSQL); a Bundle's creates
        # wait to be written together (pg_batch), so there the check asks first.
        guard = conn.dialect.name == "postgresql" and pg_batch.buffer_of(conn) is None
        verdict = await self._check_write(
            conn, stamped, category, rows, None, "c", validate=lambda: self._check_profiles(stamped), guard=guard
        )  # permission before validation, validation before the workflow rules
        version = Stored(0, stamped["resourceType"], res_id, 1, when, False, content, method, category)
        alone = self._alone(conn, version, stamped, verdict, None)
        stored, appendix = await self._insert_checked(
            conn, stamped, res_id, content, when, method, rows, category, verdict, server_id=server_id, alone=alone
        )
        await self._record(conn, stored, verdict)
        await self._after(conn, stored, stamped, 201, _patients(rows), appendix)
        return WriteOutcome(stored, 201, stamped)

    async def _insert_checked(
        self,
        conn: AsyncConnection,
        stamped: dict[str, Any],
        res_id: str,
        content: str,
        when: int,
        method: str,
        rows: IndexRows,
        category: str,
        verdict: Verdict | None,
        *,
        server_id: bool = False,
        alone: bool = False,
    ) -> tuple[Stored, Appendix | None]:
        """Version 1, written on the condition the access check left to the statement
        (:meth:`StorePolicy.write_guard`); when it does not hold, the check asks it and refuses as
        it would have before writing (or, when it now holds, the write is made without it).
        ``alone``: the write is all its transaction writes (:meth:`_alone`); with the appendix it
        was made with (None: none)."""
        res_type = stamped["resourceType"]
        patients = _patients(rows)
        try:
            event = None
            if self.outbox is not None:
                event = await self.outbox.event(conn, res_type, stamped, None, patients)
        except Exception:
            await self._confirm_guard(conn, patients)
            raise
        authorship = self._authorship(verdict)
        version = Stored(0, res_type, res_id, 1, when, False, content, method, category)

        async def insert(guarded: tuple[str, Any] | None) -> tuple[Stored | None, Appendix | None]:
            appendix = self._appendix(version, 201, patients) if alone else None
            written = await dao.insert_new(
                conn,
                res_type,
                res_id,
                content,
                when,
                method,
                rows,
                category,
                event,
                authorship,
                server_id=server_id,
                guard=guarded,
                alone=appendix,
            )
            return written, appendix

        stored, appendix = await insert(self.policy.write_guard())
        if stored is None:
            await self._confirm_guard(conn, patients)
            stored, appendix = await insert(None)
            assert stored is not None  # (no guard: written or raised)
        else:
            self.policy.guard_held()
        return stored, appendix

    async def _confirm_guard(self, conn: AsyncConnection, patients: Sequence[str]) -> None:
        """The check the write statement was to make, asked now; a refusal is in the view of the
        clients the write concerned (as :meth:`_check_write`'s)."""
        try:
            await self.policy.confirm_guard(conn)
        except Forbidden:
            if self.trail is not None:
                for patient in patients:
                    self.trail.note_patient(patient)
            raise

    async def _next_version(
        self,
        conn: AsyncConnection,
        current: Stored,
        resource: dict[str, Any],
        method: str,
        status: int | None = None,
        *,
        seen: bool | None = None,
    ) -> WriteOutcome | None:
        """The next version of ``current``; ``seen``: whether the caller may see ``current``, if
        already decided in this transaction (:meth:`_current`)."""
        when = self._tick(current)
        previous = None if current.deleted or current.content is None else current.content
        if self.prepare is not None:
            resource = self.prepare(resource, jsonio.loads(previous) if previous else None, to_iso(when))
        stamped, content = self._stamp(resource, current.res_id, current.version + 1, when)
        rows = self.indexer(stamped)
        category = self.categorize(stamped)
        verdict = await self._check_write(
            conn, stamped, category, rows, current, "u", validate=lambda: self._check_profiles(stamped), seen=seen
        )  # permission before validation, validation before the workflow rules
        event = None
        if self.outbox is not None:
            event = await self.outbox.event(conn, current.res_type, stamped, current, _patients(rows))
        final = status or (201 if current.deleted else 200)
        appendix = None
        version = Stored(current.pid, current.res_type, current.res_id, current.version + 1, when, False, None, method)
        if self._alone(conn, version, stamped, verdict, current):
            appendix = self._appendix(version, final, _patients(rows))
        stored = await dao.write_version(
            conn, current, content, when, method, rows, category, event, self._authorship(verdict), appendix
        )
        if stored is None:
            return None
        await self._record(conn, stored, verdict)
        await self._after(conn, stored, stamped, final, _patients(rows), appendix)
        return WriteOutcome(stored, final, stamped)

    async def _check_write(
        self,
        conn: AsyncConnection,
        resource: dict[str, Any],
        category: str,
        rows: IndexRows,
        current: Stored | None,
        interaction: str,
        validate: Callable[[], None] | None = None,
        *,
        seen: bool | None = None,
        guard: bool = False,
    ) -> Verdict | None:
        """The access decision and the workflow rules; ``guard``: a create's statement can carry the
        care condition (:meth:`_insert_checked`)."""
        if self.policy.internal:
            return await self.policy.check_write(
                conn, resource["resourceType"], category, [], current, interaction, resource, validate
            )
        res_type = resource["resourceType"]
        patients = _patients(rows)
        if res_type == "Patient" and (current is None or current.deleted):
            # Registering a client: the new Patient is not yet in anyone's care.
            patients = [i for i in patients if i != resource.get("id")]
        if self.trail is not None:
            await self.trail.note_mentions(conn, resource)
        try:
            # (a create concerns no current version: no context to set up, once per entry of a Bundle)
            async with self._concerning(conn, current, patients) if current is not None else _NOTHING:
                if current is not None and not current.deleted:
                    await self._check_read(conn, current, seen)  # (a refused attempt is in the client's view)
                verdict = await self.policy.check_write(
                    conn, res_type, category, patients, current, interaction, resource, validate, seen=True, guard=guard
                )  # (seen: visible, or _check_read refused it; the policy need not ask again)
                if self.write_rules is not None:
                    try:
                        verdict = await self.write_rules(
                            conn, self.policy, res_type, resource, current, interaction, patients, category
                        )
                    except Exception:
                        await self.policy.confirm_guard(conn)  # a refusal comes before the rules' verdict
                        raise
            return verdict
        except Forbidden:
            if self.trail is not None:  # a refused write is in the view of the clients it concerned
                for patient in patients:
                    self.trail.note_patient(patient)
            raise

    @asynccontextmanager
    async def _concerning(
        self, conn: AsyncConnection, current: Stored | None, patients: Sequence[str] = ()
    ) -> AsyncIterator[None]:
        """The checks of a write replacing ``current``: the facts the transaction owes are settled
        for them (the visibility check of ``current``) only when some are owed for the clients
        ``current`` is about, or ``patients`` (:func:`hub.store.deferred.scoped`). Whether the
        caller may see a resource depends on its own clients' facts only; a Bundle updating many
        clients' resources then recomputes their facts once, not before every next client's entry."""
        if current is None or self.policy.internal:
            yield
            return
        owed = deferred.owed(conn)
        if not owed or owed & {current.client_key, *patients}:
            yield  # (nothing owed, or owed for this write's clients: settled now, all in one go)
            return
        concerned = set(patients) | await dao.patients_of(conn, [current.pid])
        with deferred.scoped(conn, concerned):
            yield

    async def _check_delete(self, conn: AsyncConnection, current: Stored) -> tuple[list[str], Verdict | None]:
        """May the caller delete ``current`` (which its callers found visible to the caller first,
        :meth:`_check_read`)? Returns the Patients it belonged to, and the verdict."""
        if current.content is None or (self.policy.internal and self.trail is None and self.outbox is None):
            return [], None
        old = jsonio.loads(current.content)
        patients = _patients(self.indexer(old))
        verdict = None
        if not self.policy.internal:
            category = current.category or self.categorize(old)
            try:
                verdict = await self.policy.check_write(
                    conn, current.res_type, category, patients, current, "d", None, seen=True
                )
                if self.write_rules is not None:
                    verdict = await self.write_rules(
                        conn, self.policy, current.res_type, None, current, "d", patients, category
                    )
            except Forbidden:
                if self.trail is not None:
                    for patient in patients:
                        self.trail.note_patient(patient)
                raise
        return patients, verdict

    def _authorship(self, verdict: Verdict | None) -> Authorship:
        """Who is recorded as having written a version: the caller's organisation, and the
        creators the workflow check named (for a write that creates the resource)."""
        owners = verdict.owners if verdict is not None else ()
        if not owners and self.author_ura is None:
            return NO_AUTHORSHIP
        return Authorship(self.author_ura, owners)

    async def _record(self, conn: AsyncConnection, stored: Stored, verdict: Verdict | None) -> None:
        """What the access decision's workflow check decided is kept with the write
        (hub.workflows.check.WriteVerdict.keep: the state change, handed to :attr:`on_state_change`,
        the outbox, in the write's transaction; the creators went in with the version itself)."""
        if verdict is not None:
            await verdict.keep(conn, stored, self.on_state_change)
        if stored.res_type == DEFINITION_TYPE and self.search_params is not None:
            self.search_params.written()  # taken in when the transaction has committed

    async def check_only(
        self,
        conn: AsyncConnection,
        res_type: str,
        mode: str,
        resource: dict[str, Any] | None,
        res_id: str | None = None,
    ) -> None:
        """``$validate`` with a mode: every check the real create/update/delete would make
        (visibility, permission, integrity), without writing."""
        current = await dao.get_current(conn, res_type, res_id) if res_id else None
        if current is not None:
            await self._check_read(conn, current)
        if mode == "delete":
            if current is None or current.deleted:
                raise NotFound(f"{res_type}/{res_id} is not known", expression=res_type)
            await self._check_delete(conn, current)
            return
        if resource is None:
            return
        res_id = res_id or resource.get("id") or "validate"
        stamped, _content = self._stamp(resource, res_id, (current.version + 1) if current else 1, self._tick(current))
        rows = self.indexer(stamped)
        await self._check_write(
            conn,
            stamped,
            self.categorize(stamped),
            rows,
            current if mode == "update" and current is not None and not current.deleted else None,
            "u" if mode == "update" and current is not None else "c",
        )


#: In ``conn.info`` while a repository's own transaction of one write by id is open (:meth:`Repository._alone`).
_OWN_WRITE = "hub.repository.own_write"


@asynccontextmanager
async def _own_write(conn: AsyncConnection, own: bool) -> AsyncIterator[None]:
    """Mark ``conn`` as the repository's own transaction of one write by id (``own``) while open."""
    if not own:
        yield
        return
    conn.info[_OWN_WRITE] = True
    try:
        yield
    finally:
        if not conn.invalidated:  # (asking a broken connection's info would try to reconnect)
            conn.info.pop(_OWN_WRITE, None)


@asynccontextmanager
async def _on_its_own_if_own(conn: AsyncConnection) -> AsyncIterator[None]:
    """:func:`hub.store.db.on_its_own` in the repository's own transaction of one write, else nothing."""
    if _OWN_WRITE not in conn.info:
        yield
        return
    async with on_its_own(conn):
        yield


def identifier_criterion(criteria: str) -> tuple[str, str] | None:
    """``identifier=system|value`` (one identifier, nothing else) -> (system, value); else None."""
    params = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    if len(params) != 1 or params[0][0] != "identifier":
        return None
    system, bar, value = params[0][1].partition("|")
    if not bar or not system or not value or "," in params[0][1] or "\\" in params[0][1]:
        return None
    return system, value


def one_of(
    found: Sequence[Stored],
    res_type: str,
    what: str,
    *,
    code: str = "multiple-matches",
    expression: str | None = None,
) -> Stored | None:
    """The conditional rule, written once: no match is None, one is that resource, several are a
    412 (``what`` names the criteria in the message; ``code`` and ``expression`` go in the issue)."""
    if len(found) > 1:
        raise PreconditionFailed(
            f"{len(found)} {res_type} resources match {what}",
            code=code,
            expression=expression,
        )
    return found[0] if found else None


def _patients(rows: IndexRows) -> list[str]:
    return [i for t, i in rows.compartments if t == "Patient"]


def _patched(
    apply: Callable[[dict[str, Any]], dict[str, Any]], content: str, res_type: str, res_id: str
) -> dict[str, Any]:
    """The patched resource, checked: same type and id, and structurally valid."""
    patched = apply(jsonio.loads(content))
    if patched.get("resourceType") != res_type or patched.get("id") != res_id:
        raise Unprocessable("A patch may not change resourceType or id", expression=f"{res_type}.id")
    return check_resource(patched, res_type)


def parse_etag(value: str) -> int:
    """``W/"3"`` (or ``"3"``, or ``3``) -> 3; anything else is a 400."""
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    number = to_int(text.strip('"'))
    if number is None:
        raise BadRequest(f"If-Match '{value}' is not a version ETag like W/\"3\"", code="value")
    return number


def _etag(stored: Stored) -> dict[str, str]:
    return {"ETag": stored.etag}


__all__ = ["FhirError", "HistoryPage", "Matcher", "Repository", "WriteOutcome", "one_of", "parse_etag"]
