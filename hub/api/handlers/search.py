"""Search at type, system and compartment level; builds the searchset Bundle with paging links.

Unknown parameters are ignored and reported in an OperationOutcome entry (search mode ``outcome``);
``Prefer: handling=strict`` makes them a 400.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.result import FhirResult
from hub.fhir import jsonio
from hub.fhir.bundles import bundle, search_entry
from hub.fhir.compartment import patient_compartment_params
from hub.fhir.errors import BadRequest, operation_outcome
from hub.fhir.query import Cursor
from hub.fhir.shaping import select_elements, summarize
from hub.store.search.engine import SearchPage


async def search(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    engine = call.svc.search
    params = list(req.query)
    query = engine.parse(
        route.res_type if route.kind != "search-compartment" else route.compartment_type,
        params,
        strict=req.handling == "strict",
    )
    if route.kind == "search-compartment":
        assert route.res_type and route.res_id and route.compartment_type
        if route.res_type != "Patient":
            raise BadRequest(f"Compartment search is supported for Patient, not {route.res_type}", code="not-supported")
        if route.compartment_type != "Patient" and not patient_compartment_params(route.compartment_type):
            raise BadRequest(f"{route.compartment_type} is not in the Patient compartment", code="not-supported")
        query.compartment = ("Patient", route.res_id)
        if route.compartment_type == "Patient":
            from hub.fhir.query import Criterion, TokenValue

            query.compartment = None
            query.criteria.append(Criterion("Patient", "_id", "token", None, (TokenValue(None, route.res_id),)))
    page = await call.repo.search(query, local_base=call.base, conn=call.conn)
    path = req.path if not req.path.endswith("_search") else req.path[: -len("/_search")]
    return FhirResult(200, searchset(call.base, path, page))


def searchset(base: str, path: str, page: SearchPage) -> dict[str, Any]:
    """The searchset Bundle: matches, includes, the outcome entry for ignored parameters, links."""
    query = page.query
    shape = _shaper(query.summary, query.elements)
    entries = [search_entry(base, s, "match", shape(s.content) if shape else None) for s in page.matches]
    entries += [search_entry(base, s, "include", shape(s.content) if shape else None) for s in page.included]
    if page.warnings:
        entries.append({"resource": operation_outcome(page.warnings), "search": {"mode": "outcome"}})
    url = f"{base}/{path}" if path else base
    links = [("self", _link(url, query.canonical, query.count, query.offset, page.snapshot, query.cursor))]
    if page.next_cursor is not None:
        links.append(("next", _link(url, query.canonical, query.count, 0, page.snapshot, page.next_cursor)))
    if page.previous_cursor is not None:
        links.append(("previous", _link(url, query.canonical, query.count, 0, page.snapshot, page.previous_cursor)))
    return bundle("searchset", entries, total=page.total, links=links)


def _link(
    url: str,
    canonical: list[tuple[str, str]],
    count: int,
    offset: int,
    snapshot: int | None,
    cursor: Cursor | None = None,
) -> str:
    """A paging link: the search again, at a keyset position (``_cursor``) within the snapshot."""
    params = [(k, v) for k, v in canonical if k != "_count"]
    params.append(("_count", str(count)))
    if cursor is not None:
        params.append(("_cursor", cursor.encode()))
    elif offset:
        params.append(("_offset", str(offset)))
    if snapshot is not None and (offset or cursor is not None):
        params.append(("_snapshot", str(snapshot)))
    return f"{url}?{urlencode(params)}"


def _shaper(summary: str | None, elements: tuple[str, ...]) -> Any:
    if summary in ("true", "text", "data"):
        return lambda content: summarize(jsonio.loads(content), summary)
    if elements:
        return lambda content: select_elements(jsonio.loads(content), elements)
    return None
