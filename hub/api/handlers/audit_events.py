"""``AuditEvent`` read and search, answered from the audit log itself (never the resource store);
every write is a 405. Who sees which records follows the access policy (:func:`visibility`)."""

from __future__ import annotations

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.result import FhirResult
from hub.audit.search import Visibility, read_audit, reject_write, search_audit
from hub.fhir.errors import NotFound


def visibility(call: Call) -> Visibility:
    """Administrators: all; a client: accesses to their own data; a related person: those of the
    client they act for, if the client delegated 'audit' (or they are the legal representative);
    a professional: only what its own organisation did, successfully."""
    policy = call.policy
    if policy is None:
        return Visibility()
    p = policy.principal
    if p.kind == "admin" and p.is_admin:
        return Visibility()
    if p.kind == "client":
        return Visibility(patient_ids=frozenset(policy.patient_ids))
    if p.kind == "related":
        d = policy.delegated
        if d is not None and (d.legal_representative or "audit" in d.categories):
            return Visibility(patient_ids=frozenset(d.patient_ids))
        return Visibility(patient_ids=frozenset())
    if p.kind == "professional" and p.organisation_ura:
        return Visibility(agent_ura=p.organisation_ura, successful_only=True)
    return Visibility(patient_ids=frozenset())


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
                conn, req.query, vis, base=call.base, default_count=settings.default_page_size,
                max_count=settings.max_page_size, strict=req.handling == "strict",
            )
            return FhirResult(200, body)
    raise NotFound(f"AuditEvent supports read and search only, not {route.kind}", code="not-supported")
