"""``AuditEvent`` read and search, answered from the audit log itself (never the resource store);
every write is a 405. Who sees which records the access policy answers (:meth:`Policy.audit_scope`)."""

from __future__ import annotations

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.result import FhirResult
from hub.audit.search import Visibility, read_audit, reject_write, search_audit
from hub.fhir.errors import NotFound


def visibility(call: Call) -> Visibility:
    """The audit records the caller sees, as its access policy answers (:meth:`Policy.audit_scope`)."""
    scope = call.policy.audit_scope()
    return Visibility(scope.patient_ids, scope.agent_ura, scope.successful_only)


async def audit_events(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    reject_write(req.method)
    vis = visibility(call)
    async with call.svc.repo.reading(call.conn) as conn:
        if route.kind == "read" and route.res_id:
            event = await read_audit(conn, route.res_id, vis)
            if event is None:
                raise NotFound(f"AuditEvent/{route.res_id} is not known", expression="AuditEvent")
            return FhirResult(200, event)
        if route.kind == "search-type":
            settings = call.svc.settings
            body = await search_audit(
                conn,
                req.query,
                vis,
                base=call.base,
                default_count=settings.default_page_size,
                max_count=settings.max_page_size,
                strict=req.handling == "strict",
            )
            return FhirResult(200, body)
    raise NotFound(f"AuditEvent supports read and search only, not {route.kind}", code="not-supported")
