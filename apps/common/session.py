"""The session: a small JSON object, encrypted and authenticated (Fernet) in a cookie.

Tokens never reach the browser's JavaScript (the cookie is ``HttpOnly``) and never travel readable
(the cookie is encrypted). Fernet tokens carry their creation time, and the cookie is re-issued on
every response, so "idle for longer than ``idle_timeout``" is simply a Fernet TTL; ``max_session``
bounds the whole session. The middleware is plain ASGI, so streamed answers (SSE) pass untouched.
"""

from __future__ import annotations

import secrets
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_LIMIT = 4000


def load_or_create_key(configured: str, state_dir: Path) -> bytes:
    """The Fernet key: the configured one, else one generated once and kept (0600) in ``state_dir``."""
    if configured:
        return configured.encode()
    path = state_dir / "session.key"
    if path.exists():
        return path.read_bytes().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    path.touch(mode=0o600)
    path.write_bytes(key)
    return key


class SessionCodec:
    """Encrypts and decrypts session dicts; refuses stale, tampered or over-age cookies."""

    def __init__(self, key: bytes, idle_timeout: int, max_session: int) -> None:
        self.fernet = Fernet(key)
        self.idle_timeout = idle_timeout
        self.max_session = max_session

    def encode(self, data: dict[str, Any]) -> str:
        return self.fernet.encrypt(orjson.dumps(data)).decode("ascii")

    def decode(self, raw: str, now: float | None = None) -> dict[str, Any] | None:
        try:
            data = orjson.loads(self.fernet.decrypt(raw.encode("ascii"), ttl=self.idle_timeout))
        except (InvalidToken, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        started = data.get("started", 0)
        if not isinstance(started, int | float) or (now or time.time()) - started > self.max_session:
            return None
        return data


def new_session() -> dict[str, Any]:
    """An empty session with its start time and its CSRF token."""
    return {"started": int(time.time()), "csrf": secrets.token_urlsafe(32)}


class SessionMiddleware:
    """Puts the decrypted session in ``scope["session"]`` (``request.session``) and writes it back.

    A missing, expired or tampered cookie gives a fresh session and ``scope["session_expired"]``
    (True when there was a cookie that is no longer valid: the page can say "you were logged out").
    """

    def __init__(self, app: ASGIApp, codec: SessionCodec, *, cookie: str, secure: bool) -> None:
        self.app = app
        self.codec = codec
        self.cookie = cookie
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = _cookie_value(scope, self.cookie)
        session = self.codec.decode(raw) if raw else None
        scope["session_expired"] = bool(raw) and session is None
        if session is None:
            session = new_session()
            if scope["session_expired"]:
                session["expired"] = True  # for the login page: "you were logged out"
        scope["session"] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                current = scope.get("session") or {}
                value = self.codec.encode(current) if current else ""
                if len(value) > COOKIE_LIMIT:
                    raise RuntimeError("session too large for a cookie")
                attrs = "Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if self.secure else "")
                header = f"{self.cookie}={value}; {attrs}" if value else f"{self.cookie}=; {attrs}; Max-Age=0"
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", header.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie_value(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header is just no session
                return None
            if name in jar:
                return jar[name].value
    return None
