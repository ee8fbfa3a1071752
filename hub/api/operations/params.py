"""Reading operation input: query parameters and a POSTed Parameters resource, the same way."""

from __future__ import annotations

from typing import Any

from hub.api.interaction import FhirRequest


def parameters(req: FhirRequest) -> list[tuple[str, Any]]:
    """(name, value) pairs: query parameters as strings, Parameters values as they are
    (``value[x]`` primitives and complex values, or ``resource``)."""
    out: list[tuple[str, Any]] = list(req.query)
    body = req.body
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or ():
            if not isinstance(p, dict) or not isinstance(p.get("name"), str):
                continue
            if "resource" in p:
                out.append((p["name"], p["resource"]))
                continue
            value = next((v for k, v in p.items() if k.startswith("value")), None)
            if value is not None:
                out.append((p["name"], value))
    return out


def first(params: list[tuple[str, Any]], name: str) -> Any:
    return next((v for k, v in params if k == name), None)


def every(params: list[tuple[str, Any]], name: str) -> list[Any]:
    return [v for k, v in params if k == name]
