"""One place where errors become OperationOutcome responses (and nothing else does)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from hub.api.negotiate import Format, fhir_response, negotiate
from hub.fhir.errors import FhirError, Issue, operation_outcome
from hub.store.db import busy_error

log = logging.getLogger("hub.api")

_HTTP_CODES = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden", 413: "too-costly"}


def _format(request: Request) -> Format:
    try:
        return negotiate(request)
    except FhirError:
        return Format()


async def fhir_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    request.state.error_diagnostics = exc.diagnostics  # for the denial metrics (hub.api.accesslog)
    return fhir_response(exc.outcome(), _format(request), exc.status, exc.headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    issue = Issue(str(exc.detail), _HTTP_CODES.get(exc.status_code, "processing"))
    return fhir_response(operation_outcome([issue]), _format(request), exc.status_code, dict(exc.headers or {}))


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    issues = [
        Issue(str(e.get("msg")), "invalid", "error", (".".join(map(str, e.get("loc", ()))),)) for e in exc.errors()
    ]
    return fhir_response(operation_outcome(issues), _format(request), 400)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    busy = busy_error(exc)
    if busy is not None:  # contention, not a fault: the client may retry (logged without a traceback)
        log.warning("Database busy on %s %s: %s", request.method, request.url.path, exc)
        return fhir_response(busy.outcome(), _format(request), busy.status, busy.headers)
    log.exception("Unhandled error on %s %s", request.method, request.url.path)
    issue = Issue("Internal server error; the incident was logged", "exception", "fatal")
    return fhir_response(operation_outcome([issue]), Format(), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(FhirError, fhir_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
