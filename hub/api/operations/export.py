"""``$export`` kick-off (FHIR Bulk Data Access): ``[base]/$export``, ``[base]/Patient/$export`` and
``[base]/Group/[id]/$export``.

The kick-off only checks the request and records the job; the export runs in the background
(:mod:`hub.bulk.jobs`) with the caller's own access policy, and the answer is ``202 Accepted`` with
``Content-Location`` naming the status endpoint (:mod:`hub.api.routes.bulk`).
"""

from __future__ import annotations

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.operations import Operation
from hub.api.operations.params import parameters
from hub.api.result import FhirResult
from hub.bulk.jobs import ExportManager, JobSpec
from hub.fhir.errors import BadRequest, NotFound, information
from hub.fhir.search_values import parse_instant_param

#: The NDJSON formats a client may ask for (all mean the same).
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
#: Parameters the hub supports; others are refused (``_typeFilter``, ``_elements``, ...) unless lenient.
_KNOWN = frozenset({"_type", "_since", "_outputFormat", "_format", "_pretty"})
_ACCEPTED = frozenset({"application/fhir+json", "application/json", "*/*", ""})


def manager(call: Call) -> ExportManager:
    exports = call.svc.extras.get("exports")
    if exports is None:
        raise BadRequest("Bulk export is not available on this server", code="not-supported")
    assert isinstance(exports, ExportManager)
    return exports


async def run(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    if route.res_id is not None and route.res_type != "Group":
        raise NotFound(f"$export is not defined on {route.res_type} instances", code="not-supported")
    if route.res_id is None and route.res_type not in (None, "Patient"):
        raise NotFound(f"$export is not defined on {route.res_type}", code="not-supported")
    if req.method not in ("GET", "POST"):
        raise BadRequest("$export is kicked off with GET (or POST with Parameters)", code="not-supported")
    if not req.respond_async:
        raise BadRequest("$export needs the header 'Prefer: respond-async'", code="required", expression="Prefer")
    call.policy.check_operation("export")
    level = "group" if route.res_type == "Group" else "patient" if route.res_type == "Patient" else "system"
    types: tuple[str, ...] = ()
    since: int | None = None
    for name, value in parameters(req):
        text = str(value)
        if name == "_type":
            types += tuple(t.strip() for t in text.split(",") if t.strip())
        elif name == "_since":
            since = parse_instant_param(text, "_since")
        elif name == "_outputFormat":
            if text not in OUTPUT_FORMATS:
                raise BadRequest(
                    f"_outputFormat '{text}' is not supported; use application/fhir+ndjson",
                    code="not-supported",
                    expression="_outputFormat",
                )
        elif (name not in _KNOWN and req.handling == "strict") or name in ("_typeFilter", "_elements", "patient"):
            raise BadRequest(f"The $export parameter '{name}' is not supported", code="not-supported", expression=name)
    unknown = [t for t in types if t not in call.svc.search.resource_types]
    if unknown:
        raise BadRequest(f"_type: unknown resource type '{unknown[0]}'", expression="_type")
    if level == "group":
        assert route.res_id is not None
        await _visible_group(call, route.res_id)
    exports = manager(call)
    query = req.query_string
    request_url = f"{call.base}/{req.path}" + (f"?{query}" if query else "")
    spec = JobSpec(level, tuple(dict.fromkeys(types)), since, route.res_id, request_url, call.base)
    job_id = await exports.submit(spec, call.policy)
    return FhirResult(
        202,
        information(f"The export {job_id} has started; poll its status at the Content-Location"),
        headers={"Content-Location": status_url(call.base, job_id)},
    )


def status_url(base: str, job_id: str) -> str:
    return f"{base}/bulkstatus/{job_id}"


async def _visible_group(call: Call, group_id: str) -> None:
    """The Group must exist for this caller (the same access filter: hidden means unknown)."""
    if not await call.repo.exists("Group", group_id, local_base=call.base, conn=call.conn):
        raise NotFound(f"Group/{group_id} is not known", expression="Group")


OPERATION = Operation(
    name="export",
    levels=frozenset({"system", "type", "instance"}),
    run=run,
    definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
)
