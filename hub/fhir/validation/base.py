"""The base R4 structural check every write gets: element names, types and list cardinality.

It is the ``fhir.resources`` models' validation (shared with ``hub.fhir.parse``), with pydantic's error
locations turned into FHIRPath expressions. Profile rules come on top of it (``Validator``).
"""

from __future__ import annotations

from typing import Any

from hub.fhir.errors import Issue


def check_base(resource: dict[str, Any]) -> list[Issue]:
    """Issues of the base R4 structure check (empty when the resource is structurally valid)."""
    from hub.fhir.parse import check_structure, is_resource_type

    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(rtype, str) or not rtype:
        return [Issue("The resource has no resourceType", "required", "error", ("resourceType",))]
    if not is_resource_type(rtype):
        return [Issue(f"Unknown resource type '{rtype}'", "not-supported", "error", ("resourceType",))]
    return check_structure(resource)
