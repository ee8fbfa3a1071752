"""The FHIR REST endpoint: every method on ``/fhir/...`` becomes a :class:`FhirRequest` and goes to
:func:`hub.api.handlers.handle`, the same path a Bundle entry takes.

Every request is authenticated (bearer JWT) and gets its caller's access policy before anything
is read; only the CapabilityStatement (``GET /fhir/metadata``) is public, as SMART requires.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from anyio.to_thread import run_sync
from fastapi import APIRouter, Request
from starlette.responses import Response

from hub.access.decision import ANONYMOUS, Policy
from hub.access.policy import AccessPolicy, build_policy, build_policy_on, needs_facts
from hub.api.accesslog import current_request_id
from hub.api.body import read_body
from hub.api.context import Call, Services
from hub.api.handlers import handle
from hub.api.interaction import FhirRequest, route
from hub.api.negotiate import fhir_response, negotiate, prefer_handling, prefer_respond_async, prefer_return
from hub.audit.trail import AuditTrail
from hub.fhir.errors import BadRequest, FhirError
from hub.fhir.limits import ParseLimits, check_raw, check_shape
from hub.fhir.parse import parse_body
from hub.settings import Settings

router = APIRouter()

#: The methods the FHIR endpoint takes (hub.app routes them to it first, see hub.api.fastroute).
FHIR_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_METHODS = list(FHIR_METHODS)
#: The header a professional sends, with the reason, to break the glass (emergency access).
EMERGENCY_HEADER = "x-break-glass"


@router.api_route("/fhir", methods=_METHODS, include_in_schema=False)
@router.api_route("/fhir/{path:path}", methods=_METHODS, include_in_schema=False)
async def fhir_endpoint(request: Request, path: str = "") -> Response:
    """Authenticate, decide, handle, log: the log record is durable before the answer leaves."""
    services: Services = request.app.state.services
    fmt = negotiate(request)
    query = _query(request)
    interaction = interaction_kind(request.method, path)
    if request.scope.get("path") in (f"/fhir/{path}", "/fhir"):  # the access log's label is this one
        request.state.fhir_interaction = (request.scope["path"], interaction)
    trail = AuditTrail(
        services.audit,
        request.method,
        path.strip("/"),
        query,
        remote_addr=request.client.host if request.client else None,
        interaction=interaction,
        request_id=current_request_id(),
    )
    try:
        policy: Policy = ANONYMOUS  # the CapabilityStatement is public
        if not (request.method in ("GET", "HEAD") and path.strip("/") == "metadata"):
            policy = await authorize(request, services, trail)
        req = await to_fhir_request(request, path, services.settings)
        if req.method == "POST" and path.rstrip("/").endswith("_search"):
            trail.query = req.query_string  # the form body's parameters are the search
        call = Call(services, fhir_base(request), policy=policy, trail=trail)
        result = await handle(call, req)
    except FhirError as exc:
        denied = exc.status in (401, 403, 404) or getattr(exc, "denial", False)
        await trail.finish(exc.status, denial_reason=exc.diagnostics if denied else None)
        raise
    except Exception:
        await trail.finish(500)
        raise
    await trail.finish(result.status)
    headers = result.http_headers()
    if result.status == 304 or result.body is None or request.method == "HEAD":
        if result.body is not None and request.method == "HEAD":
            headers["Content-Type"] = f"{fmt.media_type}; charset=utf-8"
        return Response(b"", status_code=result.status, headers=headers)
    return fhir_response(result.body, fmt, result.status, headers)


#: The FHIR base of each (scheme, Host, server, root path) seen lately: building it from the request
#: is a URL parse and join per request. Bounded: the Host header is the caller's to choose.
_BASES: dict[tuple[Any, ...], str] = {}
_MAX_BASES = 64


def fhir_base(request: Request) -> str:
    """``{scheme}://{host}{root}/fhir`` as Starlette's ``request.base_url`` gives it."""
    scope = request.scope
    key = (
        scope.get("scheme", "http"),
        request.headers.get("host"),
        scope.get("server"),
        scope.get("app_root_path", scope.get("root_path", "")),
    )
    base = _BASES.get(key)
    if base is None:
        base = str(request.base_url).rstrip("/") + "/fhir"
        if len(_BASES) >= _MAX_BASES:
            _BASES.clear()
        _BASES[key] = base
    return base


def _query(request: Request) -> str:
    """The raw query string (``request.url.query`` without building the whole URL when there is none)."""
    return request.url.query if request.scope.get("query_string") else ""


def interaction_kind(method: str, path: str) -> str:
    """The interaction a request asks for, for the audit record (also when it is malformed)."""
    try:
        target = route(method, path)
    except FhirError:
        return {
            "GET": "read",
            "HEAD": "read",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(method.upper(), "read")
    if target.kind == "bundle":
        return "transaction"
    return target.kind


async def authorize(request: Request, services: Services, trail: AuditTrail) -> AccessPolicy:
    """Who is calling (401 without a valid token), and their access policy for this request."""
    principal = await services.verifier.verify_authorization(request.headers.get("authorization"))
    request.state.principal = principal
    trail.principal = principal
    emergency = (request.headers.get(EMERGENCY_HEADER) or "").strip() or None
    trail.emergency_reason = emergency
    if emergency is not None and len(emergency) < 5:
        raise BadRequest(f"{EMERGENCY_HEADER} needs the reason for emergency access", expression=EMERGENCY_HEADER)
    if needs_facts(principal, emergency):
        return await build_policy_on(services.repo.db, principal, emergency_reason=emergency)
    return await build_policy(None, principal, emergency_reason=emergency)


async def to_fhir_request(request: Request, path: str, settings: Settings) -> FhirRequest:
    """Method, path, query (form-encoded body merged in for ``_search``), headers and parsed body.

    A large body is parsed and shape-checked on a worker thread, so that the event loop keeps
    answering other requests while it is read."""
    method = request.method.upper()
    query = parse_qsl(_query(request), keep_blank_values=True)
    content_type = request.headers.get("content-type")
    body = None
    raw = b""
    if method in ("POST", "PUT", "PATCH"):
        raw = await read_body(request, settings.max_body_bytes)
        ctype = (content_type or "").split(";", 1)[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            if not path.rstrip("/").endswith("_search"):
                raise BadRequest("Form-encoded bodies are only accepted by POST [type]/_search")
            query += parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        elif raw.strip() or method != "POST" or not path.rstrip("/").endswith("_search"):
            limits = ParseLimits.from_settings(settings)
            parse = _json if ctype == "application/json-patch+json" else parse_body
            if len(raw) > settings.offload_parse_bytes:
                body = await run_sync(parse, raw, content_type, limits)
            else:
                body = parse(raw, content_type, limits)
    return FhirRequest(
        method=method,
        path=path.strip("/"),
        query=query,
        body=body,
        raw_body=raw,
        content_type=content_type,
        if_match=request.headers.get("if-match"),
        if_none_exist=request.headers.get("if-none-exist"),
        if_none_match=request.headers.get("if-none-match"),
        if_modified_since=request.headers.get("if-modified-since"),
        prefer_return=prefer_return(request),
        handling=prefer_handling(request),
        respond_async=prefer_respond_async(request),
    )


def _json(raw: bytes, _content_type: str | None, limits: ParseLimits) -> Any:
    from hub.fhir import jsonio

    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON Patch document was expected", code="required")
    check_raw(raw, limits)
    data = jsonio.loads(raw)
    check_shape(data, limits)
    return data
