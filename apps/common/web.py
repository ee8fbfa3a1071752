"""Rendering pages: Jinja2 with autoescaping, the CSRF token, one-time notices and hub errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

COMMON_TEMPLATES = Path(__file__).parent / "templates"


def environment(app_templates: Path) -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(app_templates), FileSystemLoader(COMMON_TEMPLATES)]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def notice(request: Request, text: str, kind: str = "ok") -> None:
    """A one-time message for the next page (after a redirect)."""
    request.session.setdefault("notices", []).append({"text": text, "kind": kind})


def take_notices(request: Request) -> list[Mapping[str, str]]:
    return list(request.session.pop("notices", []) or [])


def render(env: Environment, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    base: dict[str, Any] = {
        "request": request,
        "csrf_token": request.session.get("csrf", ""),
        "notices": take_notices(request),
        "path": request.url.path,
    }
    html = env.get_template(name).render(**(base | context))
    return HTMLResponse(html, status_code=status)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
