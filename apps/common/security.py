"""Security headers for every answer and CSRF checks for every form.

The CSP allows scripts and styles only from the app's own ``/static`` (no inline script or style
anywhere), forms only to the app itself and to the hub's login, and no framing at all.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def csp(hub_url: str) -> str:
    hub = "{0.scheme}://{0.netloc}".format(urlsplit(hub_url))
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            f"form-action 'self' {hub}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )


class SecurityHeadersMiddleware:
    """Adds CSP, frame, referrer, sniffing and caching headers to every HTTP answer."""

    def __init__(self, app: ASGIApp, hub_url: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", csp(hub_url).encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(self.headers)
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CsrfError(Exception):
    """A form without the session's CSRF token, or posted from another origin."""


def check_csrf(request: Request, form: FormData, public_url: str) -> None:
    """Synchroniser token (hidden field ``csrf_token`` = the session's) plus an Origin check."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        mine = "{0.scheme}://{0.netloc}".format(urlsplit(public_url))
        if origin.rstrip("/") != mine:
            raise CsrfError("form posted from another site")
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise CsrfError("missing or wrong CSRF token")
