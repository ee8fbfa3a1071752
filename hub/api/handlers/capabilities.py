"""``GET /metadata``: the CapabilityStatement, generated from what the code really supports
(the handler table, the search-parameter registry, the operations), never hand-written."""

from __future__ import annotations

from functools import cache
from typing import Any

from hub import __version__
from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.result import FhirResult
from hub.fhir.instants import now_us, to_iso

#: Interactions every resource type supports (the handlers in hub.api.handlers).
TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)


#: Types served by their own read-only handler (hub.api.handlers.audit_events).
READ_ONLY_TYPES = {"AuditEvent": ("read", "search-type")}


async def capabilities(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    cache = call.svc.extras.setdefault("capabilities", {})
    registry = call.svc.search.registry  # a SearchParameter taking effect makes a new one
    cached = cache.get(call.base)
    if cached is None or cached[0] is not registry:
        cached = cache[call.base] = (registry, capability_statement(call.base, call.svc.search.describe_type))
    return FhirResult(200, cached[1])


def capability_statement(base: str, describe_type: Any) -> dict[str, Any]:
    from hub.api.operations import OPERATIONS

    types = _resource_types()
    resources = []
    for res_type in types:
        interactions = READ_ONLY_TYPES.get(res_type, TYPE_INTERACTIONS)
        entry: dict[str, Any] = {
            "type": res_type,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{res_type}",
            "interaction": [{"code": code} for code in interactions],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "referencePolicy": ["literal", "logical"],
        }
        if res_type in READ_ONLY_TYPES:
            for flag in ("updateCreate", "conditionalCreate", "conditionalUpdate"):
                entry[flag] = False
            entry["conditionalDelete"] = "not-supported"
            entry["versioning"] = "no-version"
        else:
            entry.update(describe_type(res_type))
        ops = [
            {"name": op.name, "definition": op.definition or f"{base}/OperationDefinition/{op.name}"}
            for op in OPERATIONS.values()
            if ({"type", "instance"} & op.levels) and (not op.types or res_type in op.types)
        ]
        if ops:
            entry["operation"] = ops
        if res_type == "Subscription":
            from hub.events.topics import capability_subscription

            capability_subscription(entry, base)
        resources.append(entry)
    system_ops = [
        {"name": op.name, "definition": op.definition or f"{base}/OperationDefinition/{op.name}"}
        for op in OPERATIONS.values()
        if "system" in op.levels
    ]
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "Zorgnet Hub: shared care plans, ACP wishes and overdrachten for Dutch care networks.",
        "security": {
            "cors": True,
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ]
                }
            ],
            "description": "OAuth2 bearer tokens (SMART Backend Services for professional systems, "
            "authorization code + PKCE for PGO apps); consent-based access.",
        },
        "resource": resources,
        "interaction": [
            {"code": "transaction"},
            {"code": "batch"},
            {"code": "history-system"},
            {"code": "search-system"},
        ],
    }
    if system_ops:
        rest["operation"] = system_ops
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": to_iso(now_us())[:10],
        "publisher": "Zorgnet Hub",
        "kind": "instance",
        "software": {"name": "Zorgnet Hub", "version": __version__},
        "implementation": {"description": "Zorgnet Hub FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
        "rest": [rest],
    }


@cache
def _resource_types() -> tuple[str, ...]:
    from hub.fhir.typeinfo import resource_types

    return tuple(sorted(resource_types()))
