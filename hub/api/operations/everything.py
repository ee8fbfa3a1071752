"""``Patient/{id}/$everything``: the patient's compartment plus the resources it references, paged.

It is a search like any other (same engine, same access filter, same bounded statements): the
criteria are "in the compartment of Patient/{id}" (``idx_compartment``), narrowed by ``_type`` and
``_since``, and the page's references are included (``_include=*``). Paging links carry the same
``_offset``/``_snapshot`` as search links.
"""

from __future__ import annotations

from hub.api.context import Call
from hub.api.handlers.search import searchset
from hub.api.interaction import FhirRequest, Route
from hub.api.operations import Operation
from hub.api.result import FhirResult
from hub.fhir.errors import BadRequest, Issue
from hub.fhir.integers import MAX_BIGINT, parse_int
from hub.fhir.query import MAX_OFFSET, Criterion, DateValue, Include, SearchQuery, parse_cursor
from hub.fhir.search_values import parse_count, parse_instant_param

#: Parameters of the operation (R4 Patient-everything) the hub supports.
_KNOWN = frozenset({"_since", "_type", "_count", "_offset", "_snapshot", "_cursor", "_format", "_pretty"})


def _params(req: FhirRequest) -> list[tuple[str, str]]:
    """Query parameters, plus those of a POSTed Parameters resource."""
    params = list(req.query)
    body = req.body
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or ():
            value = next((v for k, v in p.items() if k.startswith("value")), None)
            if isinstance(p.get("name"), str) and value is not None:
                params.append((p["name"], str(value)))
    return params


def everything_query(call: Call, patient_id: str, params: list[tuple[str, str]], *, strict: bool) -> SearchQuery:
    """The search that ``$everything`` runs, from its parameters (unknown ones reported or refused)."""
    settings = call.svc.settings
    engine = call.svc.search
    values = dict(params)
    query = SearchQuery(
        None, count=parse_count(values.get("_count"), settings.default_page_size, settings.max_page_size)
    )
    query.compartment = ("Patient", patient_id)
    query.includes = [Include("*", "*", None, False)]
    for name, value in params:
        if name == "_type":
            types = tuple(t.strip() for t in value.split(",") if t.strip())
            unknown = [t for t in types if t not in engine.resource_types]
            if unknown:
                raise BadRequest(f"_type: unknown resource type '{unknown[0]}'", expression="_type")
            query.types = types
            query.canonical.append((name, value))
        elif name == "_since":
            since = parse_instant_param(value, "_since")
            query.criteria.append(Criterion("Resource", "_lastUpdated", "date", None, (DateValue("ge", since, since),)))
            query.canonical.append((name, value))
        elif name == "_cursor":
            query.cursor = parse_cursor(value)
        elif name in ("_offset", "_snapshot"):
            limit = MAX_OFFSET if name == "_offset" else MAX_BIGINT
            setattr(query, name[1:], parse_int(value, name, maximum=limit, hint="a number from a next link"))
        elif name not in _KNOWN:
            message = f"The parameter '{name}' is not supported by $everything"
            if strict:
                raise BadRequest(message, code="not-supported", expression=name)
            query.ignored.append(Issue(message, "not-supported", "warning", (name,)))
    return query


async def run(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_type == "Patient" and route.res_id
    query = everything_query(call, route.res_id, _params(req), strict=req.handling == "strict")
    page = await call.repo.everything(query, route.res_id, local_base=call.base, conn=call.conn)
    return FhirResult(200, searchset(call.base, f"Patient/{route.res_id}/$everything", page))


OPERATION = Operation(
    name="everything",
    levels=frozenset({"instance"}),
    run=run,
    types=frozenset({"Patient"}),
    definition="http://hl7.org/fhir/OperationDefinition/Patient-everything",
)
