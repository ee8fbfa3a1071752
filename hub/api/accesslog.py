"""The request id, the structured access log and the per-request metrics, in one ASGI middleware.

Every request gets an id: the caller's ``X-Request-ID`` when it is a sane token (a proxy or client
correlating its own logs), else a new UUID. The id is echoed in the response's ``X-Request-ID``,
written in the access log line and in the request's AuditEvent (``entity[query].detail``), so one
id ties the proxy's log, the hub's log and the audit trail together.

The access log is one JSON object per line on the ``hub.access`` logger: time, id, method, path
(never the query string: it can hold a BSN), status, duration, interaction, bytes, remote address
and the calling app's client id.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.metrics import HubMetrics

ACCESS_LOGGER = "hub.access"
REQUEST_ID_HEADER = "x-request-id"
_NO_FILE, _NO_FUNC = "(unknown file)", "(unknown function)"  # as logging records them without a caller
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_UUID4_KEEP = ~(0xF000 << 64 | 0xC000 << 48)  # the version and variant bits cleared (as uuid.UUID does) ...
_UUID4_SET = 4 << 76 | 0x8000 << 48  # ... and set: version 4, RFC 4122 variant
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("hub_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled by this task (None outside a request)."""
    return _request_id.get()


def interaction_of(method: str, path: str) -> str:
    """The metrics label of a request: its FHIR interaction, or the non-FHIR area it belongs to."""
    if path == "/fhir" or path.startswith("/fhir/"):
        from hub.api.routes.fhir import interaction_kind

        return interaction_kind(method, path[len("/fhir") :])
    if path.startswith(("/auth/", "/.well-known/")):
        return "auth"
    if path in ("/healthz", "/readyz"):
        return "health"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/admin/"):
        return "admin"
    return "other"


class RequestObserver:
    """Pure ASGI middleware: request id in and out, one access log line, request metrics."""

    def __init__(self, app: ASGIApp, *, metrics: HubMetrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SANE_ID.match(incoming) else _new_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = _request_id.set(request_id)
        status = 500
        sent = 0
        started = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - started
            _request_id.reset(token)
            self._observe(scope, state, request_id, status, sent, seconds)

    def _observe(
        self, scope: Scope, state: dict[str, Any], request_id: str, status: int, sent: int, seconds: float
    ) -> None:
        method = scope.get("method", "")
        path = scope.get("path", "")
        known = state.get("fhir_interaction")  # the FHIR endpoint worked it out already
        interaction = known[1] if known is not None and known[0] == path else interaction_of(method, path)
        self.metrics.observe_request(interaction, status, seconds)
        if status in (401, 403):
            self.metrics.observe_denial(status, str(state.get("error_diagnostics") or ""))
        if not self.access_log or not self.log.isEnabledFor(logging.INFO):
            return
        principal = state.get("principal")
        client = scope.get("client")
        line = {
            "ts": _now_ms(),
            "level": "info",
            "logger": ACCESS_LOGGER,
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "interaction": interaction,
            "bytes": sent,
            "remote": client[0] if client else None,
            "client_id": getattr(principal, "client_id", None),
        }
        # Logger.info would first walk the stack for the caller's file and line, which no access
        # line shows: the record is made and handled as Logger.info makes and handles it otherwise.
        log = self.log
        log.handle(log.makeRecord(log.name, logging.INFO, _NO_FILE, 0, orjson.dumps(line).decode(), (), None, _NO_FUNC))


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _now_ms() -> str:
    """``datetime.now(UTC).isoformat(timespec="milliseconds")`` with ``Z``: the seconds part is
    formatted once per second."""
    now = time.time_ns()
    second, ns = divmod(now, 1_000_000_000)
    if _second[0] != second:
        _second[1] = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds").removesuffix("+00:00")
        _second[0] = second
    return f"{_second[1]}.{ns // 1_000_000:03d}Z"


def _new_id() -> str:
    """A random (version 4) UUID as 32 hex digits: ``uuid.uuid4().hex`` without building the object."""
    return f"{int.from_bytes(os.urandom(16)) & _UUID4_KEEP | _UUID4_SET:032x}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1")).strip()
    return None


class JsonFormatter(logging.Formatter):
    """Every other log record as one JSON object per line (time, level, logger, message, request id)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == ACCESS_LOGGER:
            return record.getMessage()  # already a JSON line
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id:
            out["request_id"] = request_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of ``hub serve`` (uvicorn applies it in every worker process):
    JSON lines (``fmt == "json"``) or readable text for everything, and the access log always as
    JSON, one line per request, on standard output."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter, "access": {"format": "%(message)s"}},
        "handlers": {
            "main": {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stdout"},
            "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"},
        },
        "root": {"handlers": ["main"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            ACCESS_LOGGER: {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def configure_logging(level: str, fmt: str) -> None:
    """Apply :func:`logging_config` to this process (CLI commands other than ``serve``)."""
    import logging.config

    logging.config.dictConfig(logging_config(level, fmt))


__all__ = [
    "ACCESS_LOGGER",
    "JsonFormatter",
    "RequestObserver",
    "configure_logging",
    "logging_config",
    "current_request_id",
    "interaction_of",
]
