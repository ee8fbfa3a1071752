"""From request bytes to a checked resource dict (JSON or XML in; FHIR JSON dict out).

The dict that comes out is what gets stored (the client's JSON, decimals exact): the
``fhir.resources`` models are used only to *check* it (types, cardinality, unknown elements),
never to produce what is stored, because they alter decimals and instants.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

from hub.fhir import jsonio
from hub.fhir.errors import BadRequest, InvalidResource, Issue, UnsupportedMediaType
from hub.fhir.limits import DEFAULT_LIMITS, ParseLimits, check_raw, check_shape

JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
XML_TYPES = ("application/fhir+xml", "application/xml", "application/xml+fhir", "text/xml")


def media_kind(content_type: str | None) -> str:
    """'json' or 'xml' for a request's Content-Type; 415 for anything else."""
    if not content_type:
        return "json"
    base = content_type.split(";", 1)[0].strip().lower()
    if base in JSON_TYPES or base.endswith("+json"):
        return "json"
    if base in XML_TYPES or base.endswith("+xml"):
        return "xml"
    raise UnsupportedMediaType(f"Unsupported Content-Type '{base}': use application/fhir+json or application/fhir+xml")


def parse_body(body: bytes, content_type: str | None, limits: ParseLimits = DEFAULT_LIMITS) -> Any:
    """Bytes to a JSON value (for XML: the FHIR JSON equivalent), its shape checked against ``limits``."""
    if not body.strip():
        raise BadRequest("The request body is empty; a resource was expected", code="required")
    xml = media_kind(content_type) == "xml"
    check_raw(body, limits, xml=xml)
    if xml:
        from hub.fhir.xml import xml_to_json

        data: Any = xml_to_json(body, limits)
    else:
        data = jsonio.loads(body)
    root = data.get("resourceType") if isinstance(data, dict) else None
    check_shape(data, limits, root=root if isinstance(root, str) and root.isidentifier() else "")
    return data


def parse_resource(body: bytes, content_type: str | None, expected_type: str | None = None) -> dict[str, Any]:
    """A resource from a request body, with its ``resourceType`` checked and its structure validated."""
    data = parse_body(body, content_type)
    return check_resource(data, expected_type)


def check_resource(data: Any, expected_type: str | None = None, *, where: str = "") -> dict[str, Any]:
    """Check that ``data`` is a structurally valid resource (of ``expected_type`` if given)."""
    if not isinstance(data, dict):
        raise BadRequest("Expected a JSON object holding a FHIR resource", code="structure", expression=where or None)
    res_type = data.get("resourceType")
    if not isinstance(res_type, str) or not res_type:
        raise BadRequest("The resource has no resourceType", code="required", expression=where or None)
    if expected_type and res_type != expected_type:
        raise BadRequest(
            f"resourceType '{res_type}' does not match the type in the URL ('{expected_type}')",
            expression=f"{where}.resourceType" if where else "resourceType",
        )
    if not is_resource_type(res_type):
        raise BadRequest(f"Unknown resource type '{res_type}'", code="not-supported", expression=where or None)
    issues = check_structure(data)
    if issues:
        if where:
            issues = [_relocate(i, res_type, where) for i in issues]
        raise InvalidResource(issues[0].diagnostics, issues=issues)
    return data


def _relocate(issue: Issue, res_type: str, where: str) -> Issue:
    """An issue about ``Type.x`` of an embedded resource, re-anchored at ``where`` (e.g. Bundle.entry[3].resource)."""
    exprs = tuple(where + e[len(res_type) :] if e.startswith(res_type) else e for e in issue.expression)
    diagnostics = issue.diagnostics
    for old, new in zip(issue.expression, exprs, strict=True):
        diagnostics = diagnostics.replace(old, new)
    return Issue(diagnostics, issue.code, issue.severity, exprs)


@cache
def _model(res_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(res_type)


def is_resource_type(name: str) -> bool:
    """Whether ``name`` is a FHIR R4 resource type the hub stores."""
    from hub.fhir.typeinfo import is_resource_type as known

    return known(name)


def check_structure(resource: dict[str, Any]) -> list[Issue]:
    """Base R4 structure checks through the models: element names, types, cardinality of lists.

    The compiled first pass (:mod:`hub.fhir.structure`) vouches for a valid resource in a fraction
    of the models' time; anything it cannot vouch for goes to the models, whose errors are reported."""
    from hub.fhir.structure import first_problem

    try:
        model = _model(resource["resourceType"])
    except (ValueError, KeyError, AttributeError, ImportError):
        return [
            Issue(
                f"Resource type '{resource['resourceType']}' is not supported by this server",
                "not-supported",
                "error",
                (resource["resourceType"],),
            )
        ]
    if first_problem(resource) is None:
        return []
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [_issue(resource["resourceType"], err) for err in exc.errors(include_url=False)[:20]]
    except (KeyError, ValueError, TypeError, AttributeError) as exc:  # e.g. unknown nested types, ``"_x": true``
        return [Issue(f"Invalid resource content: {exc}", "structure", "error", (resource["resourceType"],))]
    return []


def _issue(res_type: str, err: Any) -> Issue:
    path = fhirpath_of(res_type, err.get("loc", ()))
    kind = err.get("type", "")
    msg = err.get("msg", "invalid")
    if kind == "extra_forbidden":
        msg = f"Unknown element '{path.rsplit('.', 1)[-1]}'"
    elif kind == "missing":
        msg = f"Missing required element '{path.rsplit('.', 1)[-1]}'"
    code = "structure" if kind in ("extra_forbidden", "list_type", "dict_type", "missing") else "value"
    return Issue(f"{msg} at {path}", code, "error", (path,))


def fhirpath_of(res_type: str, loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a FHIRPath expression: ('name', 0, 'family') -> Patient.name[0].family."""
    out = res_type
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "union[", "json-or-python")):
            out += f".{part}"
    return out
