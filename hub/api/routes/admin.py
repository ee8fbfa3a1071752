"""The admin-only registration endpoints: ``/admin/apps``, ``/admin/people`` and
``/admin/organisations`` (the organisation registry, :mod:`hub.access.organisations`).

The same functions as ``hub apps`` / ``hub people`` (:mod:`hub.access.registration`). Only an admin
token may call them; every call, allowed or refused, is written to the audit log. Errors are
OperationOutcomes like everywhere else in the hub.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from hub.access.principal import Principal
from hub.api.accesslog import current_request_id
from hub.audit.trail import AuditTrail
from hub.fhir.errors import BadRequest, FhirError, Forbidden, NotFound

router = APIRouter(prefix="/admin", include_in_schema=False)

Work = Callable[[AsyncConnection], Awaitable[Any]]


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(value), status_code=status, media_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 256 * 1024:
        raise BadRequest("a registration request is at most 256 KiB")
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _str(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required", expression=name)
        return None
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string", expression=name)
    return value


async def _admin(request: Request) -> Principal:
    principal: Principal = await request.app.state.services.verifier.verify_authorization(
        request.headers.get("authorization")
    )
    return principal


async def _run(request: Request, operation: str, status: int, work: Work) -> Response:
    """Authenticate, require an admin, run ``work`` in one transaction, audit the outcome."""
    from hub.access.registration import RegistrationError

    services = request.app.state.services
    trail = AuditTrail(
        services.audit,
        request.method,
        request.url.path,
        "",
        interaction="operation",
        remote_addr=request.client.host if request.client else None,
        request_id=current_request_id(),
    )
    trail.operation = operation
    answered = 500
    try:
        principal = await _admin(request)
        trail.principal = principal
        if principal.kind != "admin":
            raise Forbidden("registration is for administrators only")
        try:
            async with services.repo.writing(None) as conn:
                result = await work(conn)
        except RegistrationError as exc:
            message = str(exc)
            if message.startswith("no registered"):
                raise NotFound(message) from None
            raise BadRequest(message) from None
        answered = status
        return _json(result, status)
    except FhirError as exc:
        answered = exc.status
        raise
    finally:
        if answered != 500:
            await trail.finish(answered, denial_reason="not an administrator" if answered == 403 else None)


def _key_material(data: dict[str, Any]) -> dict[str, Any] | None:
    from hub.access.registration import jwks_from_public_key

    pem = _str(data, "public_key_pem")
    if pem is not None:
        return jwks_from_public_key(pem)
    jwks = data.get("jwks")
    if jwks is not None and not isinstance(jwks, dict):
        raise BadRequest("'jwks' must be a JWK Set object", expression="jwks")
    return jwks


@router.get("/apps")
async def list_apps(request: Request) -> Response:
    from hub.access.registration import list_clients

    async def work(conn: AsyncConnection) -> Any:
        return [v.as_json() for v in await list_clients(conn)]

    return await _run(request, "list-apps", 200, work)


@router.post("/apps")
async def add_app(request: Request) -> Response:
    from hub.access.registration import add_pgo, add_system

    data = await _body(request)

    async def work(conn: AsyncConnection) -> Any:
        kind = _str(data, "kind", required=True)
        name = _str(data, "name", required=True) or ""
        client_id = _str(data, "client_id")
        if kind == "system":
            view = await add_system(
                conn,
                name=name,
                ura=_str(data, "ura", required=True) or "",
                jwks=_key_material(data),
                jwks_url=_str(data, "jwks_url"),
                client_id=client_id,
            )
        elif kind == "pgo":
            uris = data.get("redirect_uris")
            if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
                raise BadRequest("'redirect_uris' must be a list of strings", expression="redirect_uris")
            view = await add_pgo(conn, name=name, redirect_uris=uris, client_id=client_id)
        else:
            raise BadRequest("'kind' must be 'system' or 'pgo'", expression="kind")
        return view.as_json()

    return await _run(request, "register-app", 201, work)


@router.post("/apps/{client_id}/disable")
async def disable_app(request: Request, client_id: str) -> Response:
    from hub.access.registration import set_client_active

    async def work(conn: AsyncConnection) -> Any:
        return (await set_client_active(conn, client_id, False)).as_json()

    return await _run(request, "disable-app", 200, work)


@router.post("/apps/{client_id}/enable")
async def enable_app(request: Request, client_id: str) -> Response:
    from hub.access.registration import set_client_active

    async def work(conn: AsyncConnection) -> Any:
        return (await set_client_active(conn, client_id, True)).as_json()

    return await _run(request, "enable-app", 200, work)


@router.post("/apps/{client_id}/rotate")
async def rotate_app(request: Request, client_id: str) -> Response:
    from hub.access.registration import rotate_keys

    data = await _body(request)

    async def work(conn: AsyncConnection) -> Any:
        jwks = _key_material(data)
        if jwks is None:
            raise BadRequest("give 'public_key_pem' or 'jwks'")
        keep = data.get("keep_old", False)
        if not isinstance(keep, bool):
            raise BadRequest("'keep_old' must be true or false", expression="keep_old")
        return (await rotate_keys(conn, client_id, jwks, keep_old=keep)).as_json()

    return await _run(request, "rotate-app-keys", 200, work)


@router.get("/people")
async def list_people(request: Request) -> Response:
    from hub.access.registration import list_people as list_all

    async def work(conn: AsyncConnection) -> Any:
        return [v.as_json() for v in await list_all(conn)]

    return await _run(request, "list-people", 200, work)


@router.post("/people")
async def add_person(request: Request) -> Response:
    from hub.access.registration import add_person as add

    data = await _body(request)

    async def work(conn: AsyncConnection) -> Any:
        view = await add(
            conn,
            person_id=_str(data, "person_id", required=True) or "",
            name=_str(data, "name", required=True) or "",
            bsn=_str(data, "bsn"),
        )
        return view.as_json()

    return await _run(request, "register-person", 201, work)


@router.post("/people/{person_id}/disable")
async def disable_person(request: Request, person_id: str) -> Response:
    from hub.access.registration import set_person_active

    async def work(conn: AsyncConnection) -> Any:
        return (await set_person_active(conn, person_id, False)).as_json()

    return await _run(request, "disable-person", 200, work)


__all__ = ["router"]


@router.get("/organisations")
async def list_organisations(request: Request) -> Response:
    from hub.access.organisations import all_organisations

    async def work(conn: AsyncConnection) -> Any:
        return [o.as_json() for o in await all_organisations(conn)]

    return await _run(request, "list-organisations", 200, work)


@router.post("/organisations")
async def add_organisation(request: Request) -> Response:
    """Register (or change) one organisation: ``{"ura", "name", "kind", "types": [...], "active"}``."""
    from hub.access.organisations import check_ura, register

    data = await _body(request)

    async def work(conn: AsyncConnection) -> Any:
        types = data.get("types") or []
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise BadRequest("'types' must be a list of organisation type codes", expression="types")
        active = data.get("active", True)
        if not isinstance(active, bool):
            raise BadRequest("'active' must be true or false", expression="active")
        org = await register(
            conn,
            check_ura(data.get("ura")),
            name=_str(data, "name") or "",
            kind=_str(data, "kind") or "zorgaanbieder",
            types=types,
            active=active,
        )
        return org.as_json()

    return await _run(request, "register-organisation", 201, work)


@router.post("/organisations/{ura}/disable")
async def disable_organisation(request: Request, ura: str) -> Response:
    from hub.access.organisations import disable

    async def work(conn: AsyncConnection) -> Any:
        await disable(conn, ura)
        return {"ura": ura, "active": False}

    return await _run(request, "disable-organisation", 200, work)
