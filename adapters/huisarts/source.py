"""Checking what the GP system sends before it is mapped: each record must be a valid resource of the
FHIR version the practice's endpoint speaks (``fhir.resources`` STU3 models, or R4B's for R4, whose
resources the GP summary uses unchanged). A record that is not is parked with its id and the first
problem, and the rest of the client's summary goes on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from adapters.huisarts.mapping import MappingError


def check_source(resource: dict[str, Any], fhir_version: str) -> None:
    """Raise :class:`MappingError` naming the record and the element when ``resource`` is not valid."""
    kind = str(resource.get("resourceType", ""))
    try:
        if fhir_version == "stu3":
            from fhir.resources.STU3 import get_fhir_model_class
        else:
            from fhir.resources.R4B import get_fhir_model_class
        model = get_fhir_model_class(kind)
    except (ValueError, KeyError):
        raise MappingError(f"{kind}/{resource.get('id')}: not a FHIR {fhir_version.upper()} resource type") from None
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise MappingError(f"{kind}/{resource.get('id')}: invalid at {where}: {first.get('msg')}") from None


__all__ = ["check_source"]
