"""What handling one interaction produced, before it becomes an HTTP response or a Bundle entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.fhir.errors import information
from hub.fhir.instants import to_http_date, to_iso
from hub.store.resources import Stored


@dataclass(slots=True)
class FhirResult:
    """``body`` is a JSON value (may hold orjson Fragments), raw JSON text/bytes, or None."""

    status: int
    body: Any = None
    stored: Stored | None = None
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    outcome: dict[str, Any] | None = None

    def http_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.stored is not None:
            headers.setdefault("ETag", self.stored.etag)
            headers.setdefault("Last-Modified", to_http_date(self.stored.last_updated))
        if self.location:
            headers["Location"] = self.location
        return headers

    def response_entry(self) -> dict[str, Any]:
        """Bundle.entry.response for this result (batch/transaction responses)."""
        response: dict[str, Any] = {"status": status_text(self.status)}
        if self.location:
            response["location"] = self.location
        if self.stored is not None:
            response["etag"] = self.stored.etag
            response["lastModified"] = to_iso(self.stored.last_updated)
        if self.outcome is not None:
            response["outcome"] = self.outcome
        return response


def written(
    stored: Stored, status: int, resource: Any, location: str | None, prefer: str, message: str = ""
) -> FhirResult:
    """The answer to a write, shaped by ``Prefer: return=``."""
    body: Any
    if prefer == "minimal":
        body = None
    elif prefer == "OperationOutcome":
        body = information(message or f"{stored.res_type}/{stored.res_id} version {stored.version} stored")
    else:
        body = resource if resource is not None else stored.content
    return FhirResult(status, body, stored, location)


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    501: "Not Implemented",
}


def status_text(status: int) -> str:
    reason = _REASONS.get(status)
    return f"{status} {reason}" if reason else str(status)
