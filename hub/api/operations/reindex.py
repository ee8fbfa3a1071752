"""``POST [base]/$reindex`` and ``POST [type]/$reindex``: rebuild the search index rows with the
search parameters in effect now (as HAPI's ``$reindex``), so that a SearchParameter created or
changed through the API also finds the resources stored before it. For administrators."""

from __future__ import annotations

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.operations import Operation
from hub.api.result import FhirResult
from hub.fhir.errors import BadRequest, MethodNotAllowed


async def run(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    if req.method != "POST":
        raise MethodNotAllowed("$reindex changes state: use POST", headers={"Allow": "POST"})
    call.policy.check_operation("reindex")
    if call.conn is not None:
        raise BadRequest("$reindex runs in its own transactions, not inside a Bundle", code="not-supported")
    count = await call.repo.reindex(route.res_type)
    what = f"{route.res_type} resources" if route.res_type else "resources"
    return FhirResult(
        200,
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "count", "valueInteger": count},
                {
                    "name": "return",
                    "resource": {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {
                                "severity": "information",
                                "code": "informational",
                                "diagnostics": f"Reindexed {count} {what}",
                            }
                        ],
                    },
                },
            ],
        },
    )


OPERATION = Operation(
    name="reindex",
    levels=frozenset({"system", "type"}),
    run=run,
    definition="https://zorgnet-hub.nl/fhir/OperationDefinition/reindex",
)
