"""``_summary`` and ``_elements``: returning part of a resource, marked SUBSETTED as the spec asks."""

from __future__ import annotations

from functools import cache
from typing import Any

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
_ALWAYS = ("resourceType", "id", "meta")


@cache
def summary_elements(res_type: str) -> frozenset[str]:
    """Top-level elements marked isSummary in the R4 definitions (from the models' metadata)."""
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(res_type)
    names = set()
    for name, f in model.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        if extra.get("summary_element_property"):
            names.add(f.alias or name)
    return frozenset(names)


def _mark(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    resource["meta"] = meta
    return resource


def _keep(resource: dict[str, Any], names: frozenset[str] | set[str]) -> dict[str, Any]:
    out = {}
    for key, value in resource.items():
        base = key[1:] if key.startswith("_") else key
        if key in _ALWAYS or base in names:
            out[key] = value
    return out


def summarize(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    """``_summary=true|text|data`` applied to one resource."""
    res_type = resource.get("resourceType", "")
    if mode == "true":
        return _mark(_keep(resource, summary_elements(res_type)))
    if mode == "text":
        mandatory = {"text", "id", "meta"} | _mandatory(res_type)
        return _mark(_keep(resource, mandatory))
    if mode == "data":
        return _mark({k: v for k, v in resource.items() if k != "text"})
    return resource


def select_elements(resource: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``_elements=a,b``: those top-level elements plus the mandatory ones."""
    wanted = {n.split(".", 1)[-1] if "." in n else n for n in names}
    return _mark(_keep(resource, wanted | _mandatory(resource.get("resourceType", ""))))


@cache
def _mandatory(res_type: str) -> frozenset[str]:
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(res_type)
    names = set()
    for name, f in model.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        if extra.get("element_required") or f.is_required():
            names.add(f.alias or name)
    return frozenset(names)
