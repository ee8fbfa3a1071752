"""The FHIR interaction a request asks for, parsed from method + path, independent of HTTP.

The same parser serves a direct HTTP request and each entry of a batch/transaction Bundle, so both
take exactly the same code path (Medplum's FhirRouter idea).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from hub.fhir.errors import BadRequest, MethodNotAllowed, NotFound
from hub.fhir.typeinfo import is_resource_type


@dataclass(slots=True)
class FhirRequest:
    """One interaction: method, path relative to the FHIR base, query, the relevant headers, body."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None
    raw_body: bytes = b""
    content_type: str | None = None
    if_match: str | None = None
    if_none_exist: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    prefer_return: str = "representation"
    handling: str = "lenient"
    #: ``Prefer: respond-async`` (Bulk Data kick-off).
    respond_async: bool = False

    @classmethod
    def from_url(cls, method: str, url: str, **kwargs: Any) -> FhirRequest:
        path, _, qs = url.partition("?")
        return cls(method.upper(), path.strip("/"), parse_qsl(qs, keep_blank_values=True), **kwargs)

    @property
    def query_string(self) -> str:
        from urllib.parse import urlencode

        return urlencode(self.query)


@dataclass(frozen=True, slots=True)
class Route:
    """What the path names: e.g. kind='read', res_type='Patient', res_id='1'."""

    kind: str
    res_type: str | None = None
    res_id: str | None = None
    version: str | None = None
    operation: str | None = None
    compartment_type: str | None = None


def route(method: str, path: str) -> Route:
    """Map (method, path) to an interaction; 404 for unknown types, 405 for unsupported methods."""
    parts = [p for p in path.strip("/").split("/") if p]
    n = len(parts)
    if n == 0:
        return _pick(method, path, {"POST": "bundle", "GET": "search-system"})
    first = parts[0]
    if n == 1 and first == "metadata":
        return _pick(method, path, {"GET": "capabilities"})
    if n == 1 and first == "_history":
        return _pick(method, path, {"GET": "history-system"})
    if n == 1 and first == "_search":
        return _pick(method, path, {"POST": "search-system", "GET": "search-system"})
    if first.startswith("$"):
        if n != 1:
            return _nf(path)
        return _pick(method, path, {"GET": "operation", "POST": "operation"}, operation=first[1:])
    res_type = _type(first)
    if n == 1:
        return _pick(
            method,
            path,
            {
                "GET": "search-type",
                "POST": "create",
                "PUT": "conditional-update",
                "DELETE": "conditional-delete",
                "PATCH": "conditional-patch",
                "HEAD": "search-type",
            },
            res_type=res_type,
        )
    second = parts[1]
    if n == 2 and second == "_search":
        return _pick(method, path, {"POST": "search-type", "GET": "search-type"}, res_type=res_type)
    if n == 2 and second == "_history":
        return _pick(method, path, {"GET": "history-type"}, res_type=res_type)
    if second.startswith("$"):
        if n != 2:
            return _nf(path)
        return _pick(method, path, {"GET": "operation", "POST": "operation"}, res_type=res_type, operation=second[1:])
    res_id = second
    if n == 2:
        return _pick(
            method,
            path,
            {"GET": "read", "HEAD": "read", "PUT": "update", "DELETE": "delete", "PATCH": "patch"},
            res_type=res_type,
            res_id=res_id,
        )
    third = parts[2]
    if third == "_history":
        if n == 3:
            return _pick(method, path, {"GET": "history-instance"}, res_type=res_type, res_id=res_id)
        if n == 4:
            return _pick(
                method, path, {"GET": "vread", "HEAD": "vread"}, res_type=res_type, res_id=res_id, version=parts[3]
            )
        return _nf(path)
    if third.startswith("$") and n == 3:
        return _pick(
            method,
            path,
            {"GET": "operation", "POST": "operation"},
            res_type=res_type,
            res_id=res_id,
            operation=third[1:],
        )
    if n in (3, 4) and (n == 3 or parts[3] == "_search"):
        comp = _type(third)
        return _pick(
            method,
            path,
            {"GET": "search-compartment", "POST": "search-compartment"},
            res_type=res_type,
            res_id=res_id,
            compartment_type=comp,
        )
    return _nf(path)


def _type(name: str) -> str:
    if not is_resource_type(name):
        raise NotFound(f"Unknown resource type '{name}'", code="not-supported")
    return name


def _nf(path: str) -> Route:
    raise NotFound(f"No FHIR interaction at '{path}'", code="not-supported")


def _pick(method: str, path: str, table: dict[str, str], **kwargs: Any) -> Route:
    kind = table.get(method.upper())
    if kind is None:
        allowed = ", ".join(sorted(table))
        raise MethodNotAllowed(
            f"{method} is not allowed on '{path or '/'}' (allowed: {allowed})", headers={"Allow": allowed}
        )
    return Route(kind, **kwargs)


def check_text(req: FhirRequest) -> None:
    """400 for a NUL character in the path, a parameter or a condition header: no FHIR id, search
    value or ETag holds one, and PostgreSQL cannot even compare text with it."""
    if "\x00" in req.path:
        raise BadRequest("A NUL character (%00) is not allowed in the URL path", code="value")
    for name, value in req.query:
        if "\x00" in name or "\x00" in value:
            raise BadRequest(
                f"A NUL character (%00) is not allowed in the parameter '{name.strip(chr(0))}'",
                code="value",
                expression=name.replace("\x00", ""),
            )
    for header in (req.if_match, req.if_none_exist, req.if_none_match, req.if_modified_since):
        if header is not None and "\x00" in header:
            raise BadRequest("A NUL character is not allowed in a condition", code="value")


def require_body(req: FhirRequest, what: str = "a resource") -> Any:
    if req.body is None:
        raise BadRequest(f"This interaction needs {what} in the body", code="required")
    return req.body
