"""The skeleton both apps share: middleware, static files, the hub HTTP pool, error pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from jinja2 import Environment
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from apps.common.config import AppSettings
from apps.common.hubclient import HubError
from apps.common.security import CsrfError, SecurityHeadersMiddleware
from apps.common.session import SessionCodec, SessionMiddleware, load_or_create_key
from apps.common.web import render

log = logging.getLogger("apps")
COMMON_STATIC = Path(__file__).parent / "static"


def build_app(
    settings: AppSettings,
    *,
    title: str,
    cookie: str,
    templates: Environment,
    static_dir: Path,
    login_path: str,
    on_startup: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """A FastAPI app with the session, the security headers, ``/static`` and the shared error pages."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=5.0)) as http:
            app.state.http = http
            yield

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.templates = templates
    key = load_or_create_key(settings.session_key, settings.state_dir)
    codec = SessionCodec(key, settings.idle_timeout, settings.max_session)
    app.add_middleware(SessionMiddleware, codec=codec, cookie=cookie, secure=bool(settings.secure_cookies))
    app.add_middleware(SecurityHeadersMiddleware, hub_url=settings.hub_url)
    app.mount("/static/common", StaticFiles(directory=COMMON_STATIC), name="common-static")
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> Response:
        if exc.status == 401:
            request.session.clear()
            request.session["expired"] = True
            from apps.common.web import see_other

            return see_other(login_path)
        return render(
            templates, request, "error.html", status=502 if exc.status in (0, 500) else 400, message=exc.message
        )

    @app.exception_handler(CsrfError)
    async def csrf_error(request: Request, exc: CsrfError) -> Response:
        return render(
            templates,
            request,
            "error.html",
            status=403,
            message="Dit formulier is verlopen of komt niet van deze website. Laad de pagina opnieuw.",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "Deze pagina bestaat niet." if exc.status_code == 404 else "Dit kan hier niet."
        return render(templates, request, "error.html", status=exc.status_code, message=message)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if on_startup is not None:
        on_startup(app)
    return app
