"""One handler per interaction kind; :func:`handle` dispatches a :class:`FhirRequest` to it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import DBAPIError

from hub.api.context import Call
from hub.api.handlers import audit_events, capabilities, crud, history, operations, search, transaction
from hub.api.interaction import FhirRequest, Route, check_text, route
from hub.api.result import FhirResult
from hub.audit.trail import named_in
from hub.store.db import busy_error, cost_error

log = logging.getLogger(__name__)

Handler = Callable[[Call, FhirRequest, Route], Awaitable[FhirResult]]

HANDLERS: dict[str, Handler] = {
    "bundle": transaction.process,
    "capabilities": capabilities.capabilities,
    "conditional-delete": crud.conditional_delete,
    "conditional-patch": crud.patch,
    "conditional-update": crud.conditional_update,
    "create": crud.create,
    "delete": crud.delete,
    "history-instance": history.history,
    "history-system": history.history,
    "history-type": history.history,
    "operation": operations.operation,
    "patch": crud.patch,
    "read": crud.read,
    "search-compartment": search.search,
    "search-system": search.search,
    "search-type": search.search,
    "update": crud.update,
    "vread": crud.vread,
}


#: Interactions that can name a client (by id or BSN) in their path or parameters.
_NAMING = frozenset(HANDLERS) - {"bundle", "capabilities", "history-system", "create"}


async def handle(call: Call, req: FhirRequest) -> FhirResult:
    """Run one interaction (a direct request, or one Bundle entry)."""
    check_text(req)
    try:
        return await _dispatch(call, req)
    except DBAPIError as exc:  # a statement timeout or a statement too complex is the request's cost;
        # contention (a lock held past the busy timeout, a deadlock) is a 503 the client may retry
        error = cost_error(exc, call.svc.repo.db.statement_timeout_ms) or busy_error(exc)
        if error is None:
            raise
        raise error from None


async def _dispatch(call: Call, req: FhirRequest) -> FhirResult:
    if req.path == "SubscriptionTopic" or req.path.startswith("SubscriptionTopic/"):
        from hub.api.subscriptions import topics

        return await topics(call, req)
    target = route(req.method, req.path)
    if target.res_type == "AuditEvent" and target.kind != "operation":
        return await audit_events.audit_events(call, req, target)
    if target.res_type == "Subscription":
        from hub.api.subscriptions import handle as subscription

        return await subscription(call, req, target)
    trail = call.trail
    if trail is not None and trail.enabled and target.kind in _NAMING:
        ids, bsns = named_in(target.res_type, target.res_id, req.query)
        if ids or bsns:
            if _answer_may_note_them(call, target, ids, bsns):
                return await _answer_then_note(call, target, req, ids, bsns)
            await _note_named(call, target, req)
    return await HANDLERS[target.kind](call, req, target)


#: Interactions that only read, and note the clients of what they return: ``Patient/x``, a search,
#: ``Patient/x/$everything``.
_READS_THAT_NOTE = frozenset({"read", "search-type", "search-compartment"})
#: Operations that only read and note what they return the same way.
_OPERATIONS_THAT_NOTE = frozenset({"everything"})
#: Writes of ``Patient/x`` that note x's compartment (which holds x) whenever they find x current (a
#: refused write notes it too; a failed write rolled back, so a lookup after it finds what it would
#: have found before).
_WRITES_THAT_NOTE_ITSELF = frozenset({"update", "patch", "delete"})


def _answer_may_note_them(call: Call, target: Route, ids: set[str], bsns: set[str]) -> bool:
    """A read, search or ``$everything`` (outside a Bundle) that names clients by id: what it
    returns is noted with its clients (a Patient is in its own compartment), so a named client whose
    data it returned needs no lookup; a BSN needs one to become an id, which a type-level search makes
    in its own page statement where it can (:meth:`hub.audit.trail.AuditTrail.defer_named`). Likewise
    a write of ``Patient/x`` that names only x."""
    if call.conn is not None or (bsns and target.kind != "search-type"):
        return False
    if target.kind == "operation":
        return target.operation in _OPERATIONS_THAT_NOTE
    if target.kind in _WRITES_THAT_NOTE_ITSELF:
        return target.res_type == "Patient" and ids == {target.res_id}
    return target.kind in _READS_THAT_NOTE


async def _answer_then_note(
    call: Call, target: Route, req: FhirRequest, ids: set[str], bsns: set[str] | None = None
) -> FhirResult:
    """The interaction first, and the named lookup only when its answer did not already note every
    named client (none found, hidden, deleted, or it failed early) or find the clients of every named
    BSN (a search's page statement does): the audit records are the same as with the lookup first (a
    client both named and returned is logged as returned either way), with one statement fewer when
    the answer holds them."""
    assert call.trail is not None
    trail = call.trail
    if bsns:
        trail.defer_named(bsns)
    try:
        result = await HANDLERS[target.kind](call, req, target)
    except Exception:
        if not ids <= trail.patient_ids or trail.deferred_bsns:
            try:
                await _note_named(call, target, req)
            except Exception:  # the interaction's own error stays the answer; the lookup was only bookkeeping
                log.debug("named lookup after a failed interaction failed", exc_info=True)
        raise
    if not ids <= trail.patient_ids or trail.deferred_bsns:
        await _note_named(call, target, req)
    return result


async def _note_named(call: Call, target: Route, req: FhirRequest) -> None:
    """Every attempt that names a client is in that client's audit view (also when it is refused
    or finds nothing), so look the named clients up before handling."""
    assert call.trail is not None
    async with call.svc.repo.keyed(call.conn) as conn:
        await call.trail.note_named(conn, target.res_type, target.res_id, req.query)


__all__ = ["HANDLERS", "handle"]
