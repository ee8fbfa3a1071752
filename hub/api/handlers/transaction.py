"""Batch and transaction Bundles.

A *transaction* runs in one database transaction: every entry or none. Entries are processed in the
spec's order (DELETE, POST, PUT/PATCH, GET/HEAD); ``urn:uuid:`` (and other) fullUrls of new resources
get their server ids first, and every reference in the Bundle is rewritten to them; conditional
references (``Patient?identifier=...``) are resolved to the one resource they match. A *batch* runs
each entry on its own, each with its own status and OperationOutcome.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from anyio.to_thread import run_sync
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route, require_body, route
from hub.api.result import FhirResult
from hub.fhir import jsonio
from hub.fhir.bundles import bundle
from hub.fhir.errors import BadRequest, FhirError, Issue, PreconditionFailed
from hub.fhir.limits import ParseLimits, check_shape
from hub.fhir.parse import check_resource
from hub.store.repository import identifier_criterion, one_of
from hub.store.resources import Stored

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_CONDITIONAL_REF = re.compile(r"^([A-Z][A-Za-z]+)\?(.+)$")


@dataclass(slots=True)
class _Entry:
    index: int
    full_url: str | None
    request: FhirRequest
    target: Route


async def process(call: Call, req: FhirRequest, _route: Route) -> FhirResult:
    body = require_body(req, "a batch or transaction Bundle")
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base needs a Bundle of type batch or transaction", code="structure")
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise BadRequest(f"Bundle.type must be 'batch' or 'transaction' (not '{kind}')", expression="Bundle.type")
    raw_entries = body.get("entry") or []
    if not isinstance(raw_entries, list):
        raise BadRequest("Bundle.entry must be an array", expression="Bundle.entry")
    limit = call.svc.settings.max_bundle_entries
    if len(raw_entries) > limit:
        raise BadRequest(f"The Bundle has {len(raw_entries)} entries; the limit is {limit}", code="too-costly")
    if kind == "batch":
        return await _batch(call, req, raw_entries)
    return await _transaction(call, req, raw_entries)


def _parse_entries(call: Call, outer: FhirRequest, raw_entries: list[Any]) -> list[_Entry]:
    return [_parse_entry(call, i, raw, outer) for i, raw in enumerate(raw_entries)]


def _parse_entry(call: Call, index: int, raw: Any, outer: FhirRequest) -> _Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be an object", expression=where)
    request = raw.get("request")
    if not isinstance(request, dict):
        raise BadRequest(f"{where}.request is missing", code="required", expression=f"{where}.request")
    method = str(request.get("method", "")).upper()
    if method not in _ORDER:
        raise BadRequest(
            f"{where}.request.method '{request.get('method')}' is not one of GET, HEAD, POST, PUT, PATCH, DELETE",
            expression=f"{where}.request.method",
        )
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{where}.request.url is missing", code="required", expression=f"{where}.request.url")
    url = _relative(url, call.base)
    resource = raw.get("resource")
    if method in ("POST", "PUT") and resource is None:
        raise BadRequest(f"{where} ({method}) has no resource", code="required", expression=f"{where}.resource")
    content_type = None
    if method == "PATCH" and isinstance(resource, dict) and resource.get("resourceType") == "Binary":
        resource, content_type = _binary_patch(resource, where, ParseLimits.from_settings(call.svc.settings))
    if resource is not None and method in ("POST", "PUT"):
        resource = check_resource(resource, where=f"{where}.resource")
    conditions = {}
    for key in ("ifMatch", "ifNoneExist", "ifNoneMatch", "ifModifiedSince"):
        value = request.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(
                f"{where}.request.{key} must be a string", code="structure", expression=f"{where}.request.{key}"
            )
        conditions[key] = value
    fhir_req = FhirRequest.from_url(
        method,
        url,
        body=resource,
        content_type=content_type,
        if_match=conditions["ifMatch"],
        if_none_exist=conditions["ifNoneExist"],
        if_none_match=conditions["ifNoneMatch"],
        if_modified_since=conditions["ifModifiedSince"],
        prefer_return=outer.prefer_return,
        handling=outer.handling,
    )
    try:
        target = route(method, fhir_req.path)
    except FhirError as exc:
        raise type(exc)(f"{where}.request.url: {exc.diagnostics}", expression=f"{where}.request.url") from None
    if target.kind == "bundle":
        raise BadRequest(f"{where}: a Bundle cannot contain a batch/transaction", expression=f"{where}.request")
    if resource is not None and target.res_type and method in ("POST", "PUT"):
        if resource.get("resourceType") != target.res_type:
            raise BadRequest(
                f"{where}.resource is a {resource.get('resourceType')} but the url names {target.res_type}",
                expression=f"{where}.resource.resourceType",
            )
    full_url = raw.get("fullUrl")
    return _Entry(index, full_url if isinstance(full_url, str) else None, fhir_req, target)


def _binary_patch(resource: dict[str, Any], where: str, limits: ParseLimits) -> tuple[Any, str]:
    """A JSON Patch in a transaction travels as a Binary; unwrap it (its shape limited like a body)."""
    import base64

    try:
        data = jsonio.loads(base64.b64decode(resource.get("data", "")))
    except (ValueError, TypeError, FhirError):
        raise BadRequest(
            f"{where}.resource: Binary.data is not a base64 JSON Patch", expression=f"{where}.resource"
        ) from None
    check_shape(data, limits, root=f"{where}.resource.data")
    return data, str(resource.get("contentType", "application/json-patch+json"))


def _relative(url: str, base: str) -> str:
    if url.startswith(base + "/"):
        return url[len(base) + 1 :]
    if url.startswith(("http://", "https://")):
        marker = "/fhir/"
        if marker in url:
            return url.split(marker, 1)[1]
    return url.lstrip("/")


async def _batch(call: Call, outer: FhirRequest, raw_entries: list[Any]) -> FhirResult:
    from hub.api.handlers import handle

    responses: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_entries):
        try:
            entry = _parse_entry(call, index, raw, outer)
            result = await handle(call, entry.request)
        except FhirError as exc:
            responses.append({"response": _error_response(exc)})
            continue
        responses.append(_response_entry(result))
    return FhirResult(200, bundle("batch-response", responses))


async def _transaction(call: Call, outer: FhirRequest, raw_entries: list[Any]) -> FhirResult:
    if len(outer.raw_body) > call.svc.settings.offload_parse_bytes:  # thousands of entries: off the event loop
        entries = await run_sync(_parse_entries, call, outer, raw_entries)
    else:
        entries = _parse_entries(call, outer, raw_entries)
    _check_duplicates(entries)
    results: dict[int, FhirResult] = {}
    creates = sum(1 for e in entries if e.request.method == "POST")
    async with call.repo.transaction(creates) as conn:
        await _run_transaction(call.in_transaction(conn), entries, results)
    responses = [_response_entry(results[e.index], with_resource=e.request.method in ("GET", "HEAD")) for e in entries]
    return FhirResult(200, bundle("transaction-response", responses))


async def _run_transaction(tx_call: Call, entries: list[_Entry], results: dict[int, FhirResult]) -> None:
    """The entries, in the spec's order, inside the transaction ``tx_call`` carries."""
    from hub.api.handlers import handle

    mapping = await _assign_ids(tx_call, entries)
    for entry in sorted(entries, key=lambda e: (_ORDER[e.request.method], e.index)):
        where = f"Bundle.entry[{entry.index}]"
        try:
            if entry.request.body is not None and entry.request.method in ("POST", "PUT"):
                entry.request.body = await _rewrite(tx_call, entry.request.body, mapping, f"{where}.resource")
            if entry.request.method == "POST" and entry.full_url in mapping:
                assigned = mapping[entry.full_url]
                if entry.request.if_none_exist and assigned.startswith("="):
                    results[entry.index] = await _matched(tx_call, assigned[1:])
                    continue
                results[entry.index] = await _create_with_id(tx_call, entry, assigned.split("/", 1)[1])
            else:
                results[entry.index] = await handle(tx_call, entry.request)
        except FhirError as exc:
            exc.issues = [
                Issue(
                    f"{where}: {i.diagnostics}",
                    i.code,
                    i.severity,
                    tuple(_anchor(e, entry.target.res_type, where) for e in i.expression) or (where,),
                )
                for i in exc.issues
            ]
            raise


async def _assign_ids(call: Call, entries: list[_Entry]) -> dict[str, str]:
    """fullUrl -> 'Type/id' for every entry that creates or names a resource; '=Type/id' marks a
    conditional create that matched an existing resource."""
    mapping: dict[str, str] = {}
    conn = _conn(call)
    by_identifier = await _match_by_identifier(call, entries)
    for e in entries:
        if not e.full_url or e.target.res_type is None:
            continue
        method = e.request.method
        if method == "POST" and e.target.kind == "create":
            if e.request.if_none_exist:
                found = by_identifier.get(e.index)
                if found is None:
                    found = await call.repo.match(conn, e.target.res_type, e.request.if_none_exist)
                match = one_of(
                    found,
                    e.target.res_type,
                    f"ifNoneExist '{e.request.if_none_exist}' of Bundle.entry[{e.index}]",
                    code="conflict",
                    expression=f"Bundle.entry[{e.index}].request.ifNoneExist",
                )
                if match is not None:
                    mapping[e.full_url] = f"={match.res_type}/{match.res_id}"
                    continue
            mapping[e.full_url] = f"{e.target.res_type}/{uuid.uuid4()}"
        elif method == "PUT" and e.target.kind == "update" and e.target.res_id:
            mapping[e.full_url] = f"{e.target.res_type}/{e.target.res_id}"
        elif method == "PUT" and e.target.kind == "conditional-update":
            found = await call.repo.match(conn, e.target.res_type, e.request.query_string)
            if len(found) == 1:
                mapping[e.full_url] = f"{found[0].res_type}/{found[0].res_id}"
            elif not found:
                body = e.request.body or {}
                new_id = body.get("id") or str(uuid.uuid4())
                body["id"] = new_id
                mapping[e.full_url] = f"{e.target.res_type}/{new_id}"
    return mapping


def _conn(call: Call) -> AsyncConnection:
    """The transaction's connection (every entry of a transaction runs on it)."""
    assert call.conn is not None
    return call.conn


async def _match_by_identifier(call: Call, entries: list[_Entry]) -> dict[int, list[Stored]]:
    """The conditional creates of a Bundle that name one identifier each, matched with one search per
    resource type instead of one per entry (entry index -> its matches). The same search, through
    the caller's eyes, with the criteria OR-ed; each match is given to the criteria its identifiers
    equal. Types where that is not certain (a result no criterion claims, or as many results as the
    limit) are left out: their entries are matched one by one."""
    wanted: dict[str, list[tuple[int, tuple[str, str]]]] = {}
    for e in entries:
        if e.request.method == "POST" and e.target.kind == "create" and e.request.if_none_exist and e.full_url:
            criterion = identifier_criterion(e.request.if_none_exist)
            if criterion is not None and e.target.res_type is not None:
                wanted.setdefault(e.target.res_type, []).append((e.index, criterion))
    out: dict[int, list[Stored]] = {}
    conn = _conn(call)
    per_search = call.svc.search.limits.max_values  # one search may name this many identifiers
    for res_type, every in wanted.items():
        if len(every) < 2:
            continue
        pairs = sorted({c for _, c in every})
        for start in range(0, len(pairs), per_search):
            chunk = set(pairs[start : start + per_search])
            items = [(index, c) for index, c in every if c in chunk]
            out.update(await _match_chunk(call, conn, res_type, items))
    return out


async def _match_chunk(
    call: Call, conn: AsyncConnection, res_type: str, items: list[tuple[int, tuple[str, str]]]
) -> dict[int, list[Stored]]:
    """One search for the entries ``items`` (their identifiers OR-ed): each entry's matches, or
    nothing when that is not certain (they are then matched one by one)."""
    limit = 2 * len(items) + 1
    criteria = urlencode({"identifier": ",".join(sorted({f"{s}|{v}" for _, (s, v) in items}))})
    found = await call.repo.match(conn, res_type, criteria, limit=limit)
    if len(found) >= limit:
        return {}
    claims: dict[tuple[str, str], list[Stored]] = {}
    for stored in found:
        own = _identifiers(stored)
        hits = [c for _, c in items if c in own]
        if not hits:
            return {}
        for c in dict.fromkeys(hits):
            claims.setdefault(c, []).append(stored)
    return {index: claims.get(c, [])[:2] for index, c in items}


def _identifiers(stored: Stored) -> set[tuple[str, str]]:
    content = jsonio.loads(stored.content) if stored.content else {}
    value = content.get("identifier")
    listed = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    pairs = [(i.get("system"), i.get("value")) for i in listed if isinstance(i, dict)]
    return {(str(system), str(code)) for system, code in pairs if system and code}


async def _rewrite(call: Call, value: Any, mapping: dict[str, str], where: str) -> Any:
    """Replace fullUrl references by their ids and resolve conditional references, everywhere.

    Two passes: a plain walk finds the references that need a lookup (conditional ones, and
    unknown urn: ones, which are an error), those are resolved with the database, then a second
    plain walk rewrites. (An async walk over every JSON node would cost a coroutine per node.)"""
    resolved = dict(mapping)
    for ref, path in _references(value, where):
        if ref in resolved:
            continue
        resolved[ref] = await _resolve_reference(call, ref, mapping, path)
    return _replace(value, resolved)


def _references(value: Any, where: str) -> list[tuple[str, str]]:
    """Every Reference.reference string in ``value``, with where it stands."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "reference" and isinstance(item, str):
                    out.append((item, f"{path}.reference"))
                elif isinstance(item, (dict, list)):
                    stack.append((item, f"{path}.{key}"))
        elif isinstance(node, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node) if isinstance(item, (dict, list)))
    return out


def _replace(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "div" and isinstance(item, str):
                for full, ref in mapping.items():
                    if full in item:
                        item = item.replace(full, ref.lstrip("="))
                out[key] = item
            else:
                out[key] = _replace(item, mapping)
        return out
    if isinstance(value, list):
        return [_replace(v, mapping) for v in value]
    if isinstance(value, str) and value in mapping:
        return mapping[value].lstrip("=")
    return value


async def _resolve_reference(call: Call, ref: str, mapping: dict[str, str], where: str) -> str:
    if ref in mapping:
        return mapping[ref].lstrip("=")
    if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
        raise BadRequest(f"{where}: '{ref}' is not the fullUrl of any entry in this Bundle", expression=where)
    m = _CONDITIONAL_REF.match(ref)
    if m:
        res_type, criteria = m.groups()
        what = f"the conditional reference '{ref}' at {where} (exactly one needed)"
        match = await call.repo.match_one(_conn(call), res_type, criteria, what=what, code="conflict", expression=where)
        if match is None:
            raise PreconditionFailed(f"No {res_type} matches {what}", expression=where)
        return f"{res_type}/{match.res_id}"
    return ref


async def _create_with_id(call: Call, entry: _Entry, new_id: str) -> FhirResult:
    from hub.api.result import written

    body = {k: v for k, v in entry.request.body.items() if k != "id"}
    outcome = await call.repo.create(body, conn=call.conn, assigned_id=new_id)
    stored = outcome.stored
    location = f"{call.base}/{stored.res_type}/{stored.res_id}/_history/{stored.version}"
    return written(stored, outcome.status, outcome.resource, location, entry.request.prefer_return)


async def _matched(call: Call, ref: str) -> FhirResult:
    res_type, res_id = ref.split("/", 1)
    stored = await call.repo.read(res_type, res_id, conn=call.conn)
    location = f"{call.base}/{res_type}/{res_id}/_history/{stored.version}"
    return FhirResult(200, None, stored, location)


def _anchor(expression: str, res_type: str | None, where: str) -> str:
    """``Observation.id`` of entry 3 -> ``Bundle.entry[3].resource.id``."""
    if res_type and (expression == res_type or expression.startswith(res_type + ".")):
        return f"{where}.resource{expression[len(res_type) :]}"
    return expression


def _check_duplicates(entries: list[_Entry]) -> None:
    seen: dict[str, int] = {}
    for e in entries:
        if e.request.method in ("PUT", "DELETE", "PATCH") and e.target.res_id:
            key = f"{e.target.res_type}/{e.target.res_id}"
            if key in seen:
                raise BadRequest(
                    f"Bundle.entry[{e.index}] and Bundle.entry[{seen[key]}] both change {key}",
                    expression=f"Bundle.entry[{e.index}].request.url",
                )
            seen[key] = e.index


def _response_entry(result: FhirResult, with_resource: bool = True) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if result.body is not None and (with_resource or result.status < 300):
        entry["resource"] = _as_json(result.body)
    entry["response"] = result.response_entry()
    return entry


def _as_json(body: Any) -> Any:
    from hub.fhir.bundles import raw

    if isinstance(body, (str, bytes)):
        return raw(body)
    return body


def _error_response(exc: FhirError) -> dict[str, Any]:
    from hub.api.result import status_text

    return {"status": status_text(exc.status), "outcome": exc.outcome()}
