"""An OpenAPI 3 document generated from the CapabilityStatement, for API tooling and fuzzing.

Nothing here is hand-maintained: every path comes from what ``/metadata`` declares (types,
interactions, search parameters, operations), so the document cannot drift from the server. Bodies
are described loosely (a resource of the right type with its top-level elements), because the real
contract is FHIR's, checked by the server itself.
"""

from __future__ import annotations

from typing import Any

from hub.fhir.typeinfo import type_info

FHIR_JSON = "application/fhir+json"
_PRIMITIVE_SCHEMA = {
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer"},
    "positiveInt": {"type": "integer"},
    "unsignedInt": {"type": "integer"},
    "decimal": {"type": "number"},
}
#: Result parameters every search accepts, with their documented form.
_RESULT_PARAMS: dict[str, dict[str, Any]] = {
    "_count": {"type": "integer", "minimum": 0},
    "_offset": {"type": "integer", "minimum": 0},
    "_sort": {"type": "string"},
    "_include": {"type": "string"},
    "_revinclude": {"type": "string"},
    "_summary": {"type": "string", "enum": ["true", "false", "text", "data", "count"]},
    "_total": {"type": "string", "enum": ["none", "estimate", "accurate"]},
    "_elements": {"type": "string"},
}


def openapi_document(capabilities: dict[str, Any], *, title: str = "Zorgnet Hub FHIR API") -> dict[str, Any]:
    """The OpenAPI 3.0 document for a CapabilityStatement (paths relative to the server root)."""
    rest = capabilities["rest"][0]
    paths: dict[str, dict[str, Any]] = {
        "/fhir/metadata": {"get": _op("capabilities", "The CapabilityStatement", public=True)},
    }
    system = {i["code"] for i in rest.get("interaction", [])}
    if system & {"batch", "transaction"}:
        paths["/fhir"] = {"post": _op("batch-transaction", "A batch or transaction Bundle", body=_bundle_schema())}
    if "history-system" in system:
        paths["/fhir/_history"] = {"get": _op("history-system", "History of all resources", params=_history_params())}
    for op in rest.get("operation", []):
        paths[f"/fhir/${op['name']}"] = {
            "post": _op(f"system-{op['name']}", f"${op['name']}", body=_resource_schema("Parameters"))
        }
    for res in rest.get("resource", []):
        _resource_paths(paths, res)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": capabilities.get("software", {}).get("version", "0"),
            "description": "Generated from the CapabilityStatement at /fhir/metadata.",
        },
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearer": []}],
    }


def _resource_paths(paths: dict[str, dict[str, Any]], res: dict[str, Any]) -> None:
    rtype = res["type"]
    kinds = {i["code"] for i in res.get("interaction", [])}
    search = [_query(p["name"], {"type": "string"}, p.get("type")) for p in res.get("searchParam", [])]
    search += [_query(name, schema) for name, schema in _RESULT_PARAMS.items()]
    body = _resource_schema(rtype)
    ident = _path_param("id")
    type_path: dict[str, Any] = {}
    if "search-type" in kinds:
        type_path["get"] = _op(f"search-{rtype}", f"Search {rtype}", params=search)
    if "create" in kinds:
        type_path["post"] = _op(f"create-{rtype}", f"Create a {rtype}", body=body)
    if type_path:
        paths[f"/fhir/{rtype}"] = type_path
    instance: dict[str, Any] = {}
    if "read" in kinds:
        instance["get"] = _op(f"read-{rtype}", f"Read a {rtype}", params=[ident])
    if "update" in kinds:
        instance["put"] = _op(f"update-{rtype}", f"Update (or create) a {rtype}", params=[ident], body=body)
    if "patch" in kinds:
        instance["patch"] = _op(
            f"patch-{rtype}",
            f"Patch a {rtype}",
            params=[ident],
            body=_patch_schema(),
            media="application/json-patch+json",
        )
    if "delete" in kinds:
        instance["delete"] = _op(f"delete-{rtype}", f"Delete a {rtype}", params=[ident])
    if instance:
        paths[f"/fhir/{rtype}/{{id}}"] = instance
    if "history-instance" in kinds:
        paths[f"/fhir/{rtype}/{{id}}/_history"] = {
            "get": _op(f"history-{rtype}", f"History of a {rtype}", params=[ident, *_history_params()])
        }
    if "vread" in kinds:
        paths[f"/fhir/{rtype}/{{id}}/_history/{{vid}}"] = {
            "get": _op(f"vread-{rtype}", f"A version of a {rtype}", params=[ident, _path_param("vid")])
        }
    if "history-type" in kinds:
        paths[f"/fhir/{rtype}/_history"] = {
            "get": _op(f"history-type-{rtype}", f"History of all {rtype}", params=_history_params())
        }
    for op in res.get("operation", []):
        name = op["name"]
        paths[f"/fhir/{rtype}/${name}"] = {
            "post": _op(f"{name}-{rtype}", f"${name} on {rtype}", body=_resource_schema("Parameters"))
        }
        paths[f"/fhir/{rtype}/{{id}}/${name}"] = {
            "get": _op(f"{name}-{rtype}-instance", f"${name} on one {rtype}", params=[ident])
        }


def _op(
    op_id: str,
    summary: str,
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    media: str = FHIR_JSON,
    public: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {
            "default": {
                "description": "A FHIR resource, Bundle or OperationOutcome",
                "content": {FHIR_JSON: {"schema": {"type": "object"}}},
            }
        },
    }
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
    if public:
        out["security"] = []
    return out


def _query(name: str, schema: dict[str, Any], search_type: str | None = None) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
    if search_type:
        param["description"] = f"FHIR search parameter of type {search_type}"
    return param


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _history_params() -> list[dict[str, Any]]:
    return [
        _query("_count", {"type": "integer", "minimum": 0}),
        _query("_since", {"type": "string"}),
        _query("_at", {"type": "string"}),
    ]


def _resource_schema(rtype: str) -> dict[str, Any]:
    """A resource of ``rtype``: its top-level elements typed loosely (primitives by JSON type)."""
    properties: dict[str, Any] = {"resourceType": {"type": "string", "enum": [rtype]}, "id": {"type": "string"}}
    info = type_info(rtype)
    if info is not None:
        for name, element in info.elements.items():
            if name in ("resourceType", "id", "contained"):
                continue
            item: dict[str, Any] = (
                _PRIMITIVE_SCHEMA.get(element.fhir_type, {"type": "string"})
                if element.is_primitive
                else {"type": "object"}
            )
            properties[name] = {"type": "array", "items": item} if element.is_list else item
    return {"type": "object", "required": ["resourceType"], "properties": properties}


def _bundle_schema() -> dict[str, Any]:
    entry = {
        "type": "object",
        "properties": {
            "fullUrl": {"type": "string"},
            "resource": {
                "type": "object",
                "required": ["resourceType"],
                "properties": {"resourceType": {"type": "string"}},
            },
            "request": {
                "type": "object",
                "required": ["method", "url"],
                "properties": {
                    "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]},
                    "url": {"type": "string"},
                    "ifMatch": {"type": "string"},
                    "ifNoneExist": {"type": "string"},
                    "ifNoneMatch": {"type": "string"},
                    "ifModifiedSince": {"type": "string"},
                },
            },
        },
    }
    return {
        "type": "object",
        "required": ["resourceType", "type"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["Bundle"]},
            "type": {"type": "string", "enum": ["batch", "transaction"]},
            "entry": {"type": "array", "items": entry, "maxItems": 20},
        },
    }


def _patch_schema() -> dict[str, Any]:
    op = {
        "type": "object",
        "required": ["op", "path"],
        "properties": {
            "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": {"type": "string"},
            "from": {"type": "string"},
            "value": {},
        },
    }
    return {"type": "array", "items": op, "maxItems": 40}
