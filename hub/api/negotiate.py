"""Content negotiation and FHIR responses: JSON or XML out, ``_format``, ``Accept``, ``_pretty``,
``Prefer``, and the headers every resource response carries (ETag, Last-Modified, Location).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from hub.fhir import jsonio
from hub.fhir.errors import BadRequest

JSON_MEDIA = "application/fhir+json"
XML_MEDIA = "application/fhir+xml"

_FORMAT_ALIASES = {
    "json": "json",
    "application/json": "json",
    "application/fhir+json": "json",
    "application/json+fhir": "json",
    "xml": "xml",
    "text/xml": "xml",
    "application/xml": "xml",
    "application/fhir+xml": "xml",
    "application/xml+fhir": "xml",
}


@dataclass(frozen=True, slots=True)
class Format:
    """How to answer: ``kind`` is 'json' or 'xml'."""

    kind: str = "json"
    pretty: bool = False

    @property
    def media_type(self) -> str:
        return XML_MEDIA if self.kind == "xml" else JSON_MEDIA


def negotiate(request: Request) -> Format:
    """``_format`` wins over ``Accept``; anything unrecognised in Accept falls back to JSON."""
    pretty = False
    fmt = None
    if request.scope.get("query_string"):  # most requests have none: nothing to parse then
        params = request.query_params
        pretty = params.get("_pretty", "false").lower() == "true"
        fmt = params.get("_format")
    if fmt:
        kind = _FORMAT_ALIASES.get(fmt.split(";", 1)[0].strip().lower())
        if kind is None:
            raise BadRequest(f"Unsupported _format '{fmt}': use json or xml", expression="_format")
        return Format(kind, pretty)
    accept = request.headers.get("accept", "")
    if accept:
        for part in accept.split(","):
            kind = _FORMAT_ALIASES.get(part.split(";", 1)[0].strip().lower())
            if kind:
                return Format(kind, pretty)
    return Format("json", pretty)


def prefer_return(request: Request) -> str:
    """'minimal', 'representation' (default) or 'OperationOutcome' from the Prefer header."""
    for token in request.headers.get("prefer", "").split(","):
        key, _, value = token.strip().partition("=")
        if key.strip().lower() == "return":
            value = value.strip().strip('"')
            if value in ("minimal", "representation", "OperationOutcome"):
                return value
    return "representation"


def prefer_respond_async(request: Request) -> bool:
    """Whether the Prefer header asks for an asynchronous answer (``respond-async``)."""
    return any(t.strip().lower() == "respond-async" for t in request.headers.get("prefer", "").split(","))


def prefer_handling(request: Request) -> str:
    for token in request.headers.get("prefer", "").split(","):
        key, _, value = token.strip().partition("=")
        if key.strip().lower() == "handling":
            return value.strip().strip('"').lower()
    return "lenient"


def render(data: Any, fmt: Format) -> bytes:
    """A JSON value (dict, possibly with orjson Fragments, or raw JSON bytes) in the chosen format."""
    if isinstance(data, (bytes, str)):
        raw = data.encode() if isinstance(data, str) else data
        if fmt.kind == "json" and not fmt.pretty:
            return raw
        data = jsonio.loads(raw)
    elif fmt.kind == "xml" or fmt.pretty:
        data = _unfragment(data) if _has_fragment(data) else data
    if fmt.kind == "xml":
        from hub.fhir.xml import json_to_xml

        return json_to_xml(data, pretty=fmt.pretty)
    return jsonio.dumps(data, pretty=fmt.pretty)


def fhir_response(data: Any, fmt: Format, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(render(data, fmt), status_code=status, media_type=_media(fmt), headers=headers)


def _media(fmt: Format) -> str:
    return f"{fmt.media_type}; charset=utf-8"


def _has_fragment(data: Any) -> bool:
    if isinstance(data, orjson.Fragment):
        return True
    if isinstance(data, dict):
        return any(_has_fragment(v) for v in data.values())
    if isinstance(data, list):
        return any(_has_fragment(v) for v in data)
    return False


def _unfragment(data: Any) -> Any:
    """Parse embedded raw-JSON fragments (needed before XML conversion or pretty printing)."""
    return jsonio.loads(orjson.dumps(data))
