"""``Patient/{id}/$grant-delegation`` and ``$withdraw-delegation``: the client (or their legal
representative, or an administrator recording a paper form) lets a person act for them in some
data categories, and takes it back.

A delegation is stored as a privacy Consent (category ``delegatie``) like any other, so it is
versioned, audited and visible in ``$access``; the access layer derives its ``delegation`` row in
the same transaction, so a withdrawal takes effect on the very next request.
"""

from __future__ import annotations

from typing import Any

from hub.access.facts import CONSENT_CATEGORY_SYSTEM, DATA_CATEGORY_SYSTEM, PERSON_SYSTEM
from hub.access.grants import CATEGORIES
from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.operations import Operation
from hub.api.operations.params import every, first, parameters
from hub.api.result import FhirResult
from hub.fhir import jsonio
from hub.fhir.errors import BadRequest, information
from hub.fhir.instants import now_us, to_iso

_SCOPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]}
_DELEGATEE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "DELEGATEE"}]}


def delegation_consent(
    patient_id: str, person: str, categories: list[str], start: str | None, end: str | None
) -> dict[str, Any]:
    provision: dict[str, Any] = {
        "type": "permit",
        "actor": [{"role": _DELEGATEE, "reference": {"identifier": {"system": PERSON_SYSTEM, "value": person}}}],
        "code": [{"coding": [{"system": DATA_CATEGORY_SYSTEM, "code": c}]} for c in categories],
    }
    if start or end:
        provision["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    return {
        "resourceType": "Consent",
        "meta": {"profile": ["https://zorgnet-hub.nl/fhir/StructureDefinition/zorgnet-Consent"]},
        "status": "active",
        "scope": _SCOPE,
        "category": [{"coding": [{"system": CONSENT_CATEGORY_SYSTEM, "code": "delegatie"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": to_iso(now_us()),
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision,
    }


async def grant(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_id
    params = parameters(req)
    person = first(params, "person")
    categories = [str(c) for c in every(params, "category")]
    if not isinstance(person, str) or not person:
        raise BadRequest("'person' (the id of the person who may act) is required", expression="person")
    unknown = sorted(set(categories) - set(CATEGORIES))
    if not categories or unknown:
        raise BadRequest(f"'category' must name data categories ({', '.join(CATEGORIES)})", expression="category")
    await call.repo.read("Patient", route.res_id, conn=call.conn)
    consent = delegation_consent(
        route.res_id, person, sorted(set(categories)), first(params, "start"), first(params, "end")
    )
    outcome = await call.repo.create(consent, conn=call.conn)
    location = f"{call.base}/Consent/{outcome.stored.res_id}/_history/{outcome.stored.version}"
    return FhirResult(201, outcome.resource, outcome.stored, location)


async def withdraw(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_id
    person = first(parameters(req), "person")
    if not isinstance(person, str) or not person:
        raise BadRequest("'person' is required", expression="person")
    await call.repo.read("Patient", route.res_id, conn=call.conn)
    criteria = f"patient=Patient/{route.res_id}&status=active&category={CONSENT_CATEGORY_SYSTEM}|delegatie"
    async with call.repo.writing(call.conn) as conn:
        found = await call.repo.match(conn, "Consent", criteria, limit=1000)
        withdrawn = 0
        for stored in found:
            consent = jsonio.loads(stored.content or "{}")
            actors = (consent.get("provision") or {}).get("actor") or []
            if not any(((a.get("reference") or {}).get("identifier") or {}).get("value") == person for a in actors):
                continue
            consent["status"] = "inactive"
            await call.repo.update("Consent", stored.res_id, consent, conn=conn)
            withdrawn += 1
    return FhirResult(200, information(f"Withdrew {withdrawn} delegation(s) to person '{person}'"))


GRANT = Operation(
    name="grant-delegation",
    levels=frozenset({"instance"}),
    run=grant,
    types=frozenset({"Patient"}),
    definition="https://zorgnet-hub.nl/fhir/OperationDefinition/Patient-grant-delegation",
)
WITHDRAW = Operation(
    name="withdraw-delegation",
    levels=frozenset({"instance"}),
    run=withdraw,
    types=frozenset({"Patient"}),
    definition="https://zorgnet-hub.nl/fhir/OperationDefinition/Patient-withdraw-delegation",
)
