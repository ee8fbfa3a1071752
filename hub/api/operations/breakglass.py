"""``POST Patient/{id}/$break-glass`` (``reason`` code, ``text``): open a time-bounded emergency
grant for one client (see :mod:`hub.access.breakglass`). Answers a Parameters with the grant's end."""

from __future__ import annotations

from hub.access.breakglass import DEFAULT_MINUTES, check_reason, open_grant
from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.operations import Operation
from hub.api.operations.params import first, parameters
from hub.api.result import FhirResult
from hub.fhir.errors import BadRequest, Forbidden, MethodNotAllowed, NotFound
from hub.fhir.instants import now_us, to_iso
from hub.store.resources import existing_ids


def count(call: Call, outcome: str, reason: str = "") -> None:
    """``hub_break_glass_total`` (:class:`hub.api.metrics.HubMetrics`), when the app keeps metrics."""
    metrics = call.svc.extras.get("metrics")
    if metrics is not None:
        metrics.observe_break_glass(outcome, reason)


async def run(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_id
    if req.method != "POST":
        raise MethodNotAllowed("$break-glass changes state: use POST", headers={"Allow": "POST"})
    p = call.policy.principal
    try:
        call.policy.check_operation("break-glass")
    except Forbidden:
        count(call, "refused")
        raise
    assert p is not None and p.organisation_ura, "a professional of an organisation"
    params = parameters(req)
    code, text = check_reason(first(params, "reason"), first(params, "text"))
    try:
        minutes = int(call.svc.settings.extra_settings.get("break_glass_minutes", DEFAULT_MINUTES))
    except ValueError:
        raise BadRequest("The setting break_glass_minutes must be a number of minutes") from None
    practitioner = "|".join(p.practitioner) if p.practitioner else None
    trail = call.trail
    if trail is not None:
        trail.emergency_reason = f"{code}: {text}"
    async with call.svc.repo.writing(call.conn) as conn:
        if not await existing_ids(conn, "Patient", [route.res_id]):
            raise NotFound(f"Patient/{route.res_id} is not known", expression="Patient")
        try:
            grant = await open_grant(
                conn, p.organisation_ura, practitioner, route.res_id, code, text, now_us(), minutes
            )
        except Forbidden:
            count(call, "refused")
            raise
    if trail is not None:
        trail.note_patient(route.res_id)
    count(call, "opened", code)
    return FhirResult(
        200,
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueReference": {"reference": f"Patient/{route.res_id}"}},
                {"name": "reason", "valueCode": grant.reason_code},
                {"name": "start", "valueInstant": to_iso(grant.start)},
                {"name": "end", "valueInstant": to_iso(grant.end)},
            ],
        },
    )


OPERATION = Operation(
    name="break-glass",
    levels=frozenset({"instance"}),
    run=run,
    types=frozenset({"Patient"}),
    definition="https://zorgnet-hub.nl/fhir/OperationDefinition/Patient-break-glass",
)
