"""The ``_history`` interactions at instance, type and system level, paged newest first.

Paging uses a cursor (the global history row id) rather than an offset, so versions written while
a client pages never shift or repeat what it sees.
"""

from __future__ import annotations

from urllib.parse import urlencode

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.result import FhirResult
from hub.fhir.bundles import bundle, history_entry
from hub.fhir.integers import parse_int
from hub.fhir.search_values import parse_count, parse_instant_param


async def history(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    params = dict(req.query)
    settings = call.svc.settings
    count = parse_count(params.get("_count"), settings.default_page_size, settings.max_page_size)
    since = parse_instant_param(params["_since"], "_since") if "_since" in params else None
    at = parse_instant_param(params["_at"], "_at", upper=True) if "_at" in params else None
    cursor = None
    if "_cursor" in params:
        cursor = parse_int(params["_cursor"], "_cursor", hint="a number from a next link")
    page = await call.repo.history(
        res_type=route.res_type,
        res_id=route.res_id,
        since=since,
        at=at,
        cursor=cursor,
        count=count,
        conn=call.conn,
    )
    path = "/".join(p for p in (route.res_type, route.res_id) if p)
    self_url = f"{call.base}/{path + '/' if path else ''}_history"
    keep = [(k, v) for k, v in req.query if k != "_cursor"]
    links = [("self", f"{self_url}?{urlencode(req.query)}" if req.query else self_url)]
    if page.next_cursor is not None:
        links.append(("next", f"{self_url}?{urlencode([*keep, ('_cursor', str(page.next_cursor))])}"))
    entries = [history_entry(call.base, s) for s in page.entries]
    return FhirResult(200, bundle("history", entries, links=links))
