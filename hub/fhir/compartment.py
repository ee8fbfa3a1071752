"""Patient compartment membership, from the R4 Patient CompartmentDefinition.

A resource is in the compartment of every Patient that one of its compartment parameters
references (e.g. Observation ``subject`` and ``performer``); a Patient is in its own compartment
(and, through ``link``, in those of the patients it links to). Membership is computed from the
reference index rows, so it is exactly what ``Patient/x/Observation`` search would find.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from hub.fhir.references import is_local_url
from hub.paths import definitions_dir

#: What the hub adds to the R4 definition. R4 leaves Task out of the Patient compartment, but an
#: overdracht Task is about one client and access to it is decided per client, so a Task is in the
#: compartment of the Patient it is ``for``.
HUB_ADDITIONS: Mapping[str, tuple[str, ...]] = {"Task": ("patient",)}


@functools.cache
def _patient_definition() -> Mapping[str, tuple[str, ...]]:
    path = definitions_dir() / "r4" / "compartment-patient.json"
    data = orjson.loads(path.read_bytes())
    definition = {
        r["code"]: tuple(p for p in r.get("param") or () if not p.startswith("{"))
        for r in data.get("resource") or ()
        if r.get("param")
    }
    for res_type, params in HUB_ADDITIONS.items():
        definition[res_type] = tuple(dict.fromkeys((*definition.get(res_type, ()), *params)))
    return definition


def patient_compartment_params(resource_type: str) -> tuple[str, ...]:
    """The search parameters of ``resource_type`` that put it in a Patient compartment (may be empty)."""
    return _patient_definition().get(resource_type, ())


def patient_compartment_types() -> frozenset[str]:
    """Resource types that can be in a Patient compartment."""
    return frozenset(_patient_definition())


def patient_compartment_ids(
    resource_type: str,
    resource_id: str | None,
    reference_rows: Iterable[Mapping[str, Any]],
    *,
    base_url: str | None = None,
) -> list[str]:
    """Ids of the Patients whose compartment the resource is in, in first-seen order.

    ``reference_rows`` are the resource's reference index rows (``param``, ``target_type``,
    ``target_id``, ``target_url``). Only Patient targets count; absolute references count only
    when they name a resource on this server (:func:`hub.fhir.references.resolve`).
    """
    params = patient_compartment_params(resource_type)
    out: dict[str, None] = {}
    if resource_type == "Patient" and resource_id:
        out[resource_id] = None
    if not params:
        return list(out)
    for row in reference_rows:
        if row.get("param") not in params or row.get("target_type") != "Patient":
            continue
        target_id = row.get("target_id")
        if not target_id:
            continue
        url = row.get("target_url")
        if url is not None and not is_local_url(url, base_url):
            continue
        out[target_id] = None
    return list(out)


__all__ = ["patient_compartment_ids", "patient_compartment_params", "patient_compartment_types"]
