"""Instance-level interactions: create, read, vread, update, patch, delete (plain and conditional)."""

from __future__ import annotations

from typing import Any

from anyio.to_thread import run_sync

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route, require_body
from hub.api.result import FhirResult, written
from hub.fhir.errors import BadRequest, information
from hub.fhir.instants import to_http_date
from hub.fhir.parse import check_resource, media_kind
from hub.fhir.patch import PatchLimits
from hub.store.resources import Stored


async def _checked(call: Call, req: FhirRequest, res_type: str) -> dict[str, Any]:
    """The request's resource, structurally checked; a large one on a worker thread."""
    body = require_body(req)
    if len(req.raw_body) > call.svc.settings.offload_parse_bytes:
        return await run_sync(check_resource, body, res_type)
    return check_resource(body, res_type)


def _location(call: Call, stored: Stored) -> str:
    return f"{call.base}/{stored.res_type}/{stored.res_id}/_history/{stored.version}"


def _criteria(req: FhirRequest, what: str) -> str:
    if not req.query:
        raise BadRequest(f"A conditional {what} needs search criteria in the URL", code="required")
    return req.query_string


async def create(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_type
    resource = await _checked(call, req, route.res_type)
    resource = {k: v for k, v in resource.items() if k != "id"}  # the server assigns the id on create
    outcome = await call.repo.create(resource, if_none_exist=req.if_none_exist, conn=call.conn)
    return written(
        outcome.stored,
        outcome.status,
        outcome.resource,
        _location(call, outcome.stored),
        req.prefer_return,
        outcome.message,
    )


async def read(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_type and route.res_id
    stored = await call.repo.read(route.res_type, route.res_id, conn=call.conn)
    return _maybe_not_modified(req, stored) or FhirResult(200, stored.content, stored)


async def vread(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_type and route.res_id and route.version
    stored = await call.repo.vread(route.res_type, route.res_id, route.version, conn=call.conn)
    return _maybe_not_modified(req, stored) or FhirResult(200, stored.content, stored)


async def update(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_type and route.res_id
    resource = await _checked(call, req, route.res_type)
    outcome = await call.repo.update(route.res_type, route.res_id, resource, if_match=req.if_match, conn=call.conn)
    return written(outcome.stored, outcome.status, outcome.resource, _location(call, outcome.stored), req.prefer_return)


async def conditional_update(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_type
    resource = await _checked(call, req, route.res_type)
    outcome = await call.repo.conditional_update(
        route.res_type, _criteria(req, "update"), resource, conn=call.conn, if_match=req.if_match
    )
    return written(outcome.stored, outcome.status, outcome.resource, _location(call, outcome.stored), req.prefer_return)


async def delete(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_type and route.res_id
    outcome = await call.repo.delete(route.res_type, route.res_id, conn=call.conn, if_match=req.if_match)
    if outcome is None:
        return FhirResult(200, information(f"{route.res_type}/{route.res_id}: nothing to delete"))
    return FhirResult(200, information(outcome.message), outcome.stored, headers={"ETag": outcome.stored.etag})


async def conditional_delete(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_type
    outcome = await call.repo.conditional_delete(route.res_type, _criteria(req, "delete"), conn=call.conn)
    if outcome is None:
        return FhirResult(200, information(f"No {route.res_type} matched; nothing deleted"))
    return FhirResult(200, information(outcome.message), outcome.stored, headers={"ETag": outcome.stored.etag})


async def patch(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_type
    apply = _patch_function(req, PatchLimits.from_settings(call.svc.settings))
    if route.res_id is None:
        outcome = await call.repo.conditional_patch(
            route.res_type, _criteria(req, "patch"), apply, conn=call.conn, if_match=req.if_match
        )
    else:
        outcome = await call.repo.patch(route.res_type, route.res_id, apply, if_match=req.if_match, conn=call.conn)
    return written(outcome.stored, outcome.status, outcome.resource, _location(call, outcome.stored), req.prefer_return)


def _patch_function(req: FhirRequest, limits: PatchLimits) -> Any:
    """JSON Patch for ``application/json-patch+json``; FHIRPath Patch for a Parameters resource."""
    from hub.fhir.patch import apply_fhirpath_patch, apply_json_patch

    body = require_body(req, "a patch document")
    ctype = (req.content_type or "").split(";", 1)[0].strip().lower()
    if ctype == "application/json-patch+json" or isinstance(body, list):
        if not isinstance(body, list):
            raise BadRequest("A JSON Patch document must be a JSON array of operations", code="structure")
        return lambda resource: apply_json_patch(resource, body, limits)
    if ctype and media_kind(ctype) not in ("json", "xml"):
        raise BadRequest(f"Unsupported patch format '{ctype}'")
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest(
            "A FHIRPath Patch must be a Parameters resource (or send application/json-patch+json)",
            code="structure",
        )
    # Checked where it is applied (on a worker thread, see Repository.patch), not on the event loop.
    return lambda resource: apply_fhirpath_patch(resource, check_resource(body, "Parameters"), limits)


def _maybe_not_modified(req: FhirRequest, stored: Stored) -> FhirResult | None:
    """Conditional read: If-None-Match / If-Modified-Since -> 304 when nothing changed."""
    if req.if_none_match:
        tags = {t.strip() for t in req.if_none_match.split(",")}
        if stored.etag in tags or stored.etag.removeprefix("W/") in tags or "*" in tags:
            return FhirResult(304, None, stored)
    if req.if_modified_since and not req.if_none_match:
        if to_http_date(stored.last_updated) == req.if_modified_since.strip():
            return FhirResult(304, None, stored)
        from email.utils import parsedate_to_datetime

        from hub.fhir.instants import from_datetime

        try:
            since = from_datetime(parsedate_to_datetime(req.if_modified_since))
        except (TypeError, ValueError):
            return None
        if stored.last_updated // 1_000_000 <= since // 1_000_000:
            return FhirResult(304, None, stored)
    return None
