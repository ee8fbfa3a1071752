"""The authorization server's HTTP routes: ``/auth/token``, ``/auth/authorize`` (the development login),
``/.well-known/smart-configuration`` and ``/.well-known/jwks.json``.

What they answer is decided by :class:`hub.access.authserver.AuthorizationServer`; this module turns
requests into its questions and its answers into JSON, HTML pages (:mod:`hub.api.routes.oauth_pages`)
and redirects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from hub.access.authserver import (
    AuthorizationServer,
    AuthorizeStep,
    ConsentPage,
    ErrorPage,
    LoginPage,
    OAuthError,
    PatientIdLookup,
    smart_configuration,
)
from hub.access.clients import DelegationLookup, table_delegations
from hub.access.keys import HubKeys
from hub.access.tokens import AuthConfig
from hub.api.routes.oauth_pages import PAGE_HEADERS, consent_form, error_page, login_form

#: Opens the transaction a request works in (e.g. ``lambda request: request.app.state.db.write()``).
Transaction = Callable[[Request], AbstractAsyncContextManager[AsyncConnection]]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _page(step: AuthorizeStep, action: str) -> Response:
    """The HTML (or the redirect) of one step of the development login."""
    if isinstance(step, ErrorPage):
        return HTMLResponse(error_page(step.message), status_code=400, headers=PAGE_HEADERS)
    if isinstance(step, LoginPage):
        return HTMLResponse(
            login_form(action, step.fields, step.client_name, step.persons, step.error), headers=PAGE_HEADERS
        )
    if isinstance(step, ConsentPage):
        return HTMLResponse(
            consent_form(action, step.fields, step.client_name, step.who, step.options, step.scopes, step.error),
            status_code=400 if step.error else 200,
            headers=PAGE_HEADERS,
        )
    return RedirectResponse(step.url, status_code=303, headers=PAGE_HEADERS)


class _Routes:
    def __init__(self, server: AuthorizationServer, transaction: Transaction) -> None:
        self.server = server
        self.transaction = transaction

    async def token(self, request: Request) -> Response:
        try:
            form = await request.form()
            body = await self.server.token(lambda: self.transaction(request), form)
        except OAuthError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=NO_STORE)
        return JSONResponse(body, headers=NO_STORE)

    async def authorize(self, request: Request) -> Response:
        params = await request.form() if request.method == "POST" else request.query_params
        approved = [str(s) for s in params.getlist("scope_ok")] if request.method == "POST" else []
        step = await self.server.authorize(lambda: self.transaction(request), params, approved)
        return _page(step, str(request.url_for("hub_auth_authorize_post").path))

    async def smart_configuration(self) -> JSONResponse:
        return JSONResponse(smart_configuration(self.server.config), headers={"Cache-Control": "max-age=300"})

    async def jwks(self) -> JSONResponse:
        self.server.keys.refresh(min_interval=30.0)
        return JSONResponse(self.server.keys.public_jwks(), headers={"Cache-Control": "max-age=300"})


def build_auth_router(
    config: AuthConfig,
    keys: HubKeys,
    transaction: Transaction,
    *,
    delegations: DelegationLookup = table_delegations,
    patient_id_for_bsn: PatientIdLookup | None = None,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """The authorization server's routes (mount at the root of the app, not under the FHIR base).

    ``transaction(request)`` opens the write transaction the endpoints run in;
    ``delegations`` says for whom a person may act (the consent layer can replace the default,
    which reads the ``delegation`` table); ``patient_id_for_bsn`` adds the SMART ``patient``
    launch context to PGO token responses.
    """
    routes = _Routes(AuthorizationServer(config, keys, delegations, patient_id_for_bsn, clock), transaction)
    router = APIRouter(tags=["auth"])
    router.add_api_route("/auth/token", routes.token, methods=["POST"], include_in_schema=True, name="hub_auth_token")
    if config.dev_login:
        router.add_api_route("/auth/authorize", routes.authorize, methods=["GET"], name="hub_auth_authorize")
        router.add_api_route("/auth/authorize", routes.authorize, methods=["POST"], name="hub_auth_authorize_post")
    router.add_api_route(
        "/.well-known/smart-configuration",
        routes.smart_configuration,
        methods=["GET"],
        name="hub_smart_configuration",
    )
    if config.fhir_path:
        router.add_api_route(
            f"{config.fhir_path}/.well-known/smart-configuration",
            routes.smart_configuration,
            methods=["GET"],
            name="hub_smart_configuration_fhir",
        )
    router.add_api_route("/.well-known/jwks.json", routes.jwks, methods=["GET"], name="hub_jwks")
    return router


__all__ = ["NO_STORE", "Transaction", "build_auth_router"]
