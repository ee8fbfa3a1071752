"""eOverdracht 4.0 (FHIR STU3) <-> the hub's R4, resource by resource, without loss.

:func:`to_r4` converts one STU3 resource of an eOverdracht transfer (the notification Task, the advance
notice and nursing handoff Compositions, and the zib resources their sections reference) to R4;
:func:`to_stu3` converts back. The pair is lossless on the eOverdracht examples:

- an element that moved or changed type between the versions is converted (``Task.requester.agent`` ->
  ``Task.requester``, ``Composition.class`` -> ``category``, ``Encounter.reason`` -> ``reasonCode``,
  ``Condition.clinicalStatus`` code -> CodeableConcept, ``Observation.comment`` -> ``note``, ...);
- an STU3 element with no R4 home is kept in the FHIR cross-version extension for it
  (``http://hl7.org/fhir/3.0/StructureDefinition/extension-<path>``);
- the STU3 profiles a resource claims are kept in :data:`STU3_PROFILE` extensions (the hub validates
  against R4 profiles; an STU3 profile URL in ``meta.profile`` would claim conformance it cannot check);
- an element R4 requires that STU3 lacks (``Consent.scope``, ``NutritionOrder.intent``) is filled in, and
  dropped on the way back.

Both directions are checked with the fhir.resources models (:func:`check_stu3`, :func:`check_r4`).
"""

from __future__ import annotations

import copy
import html
from collections.abc import Callable
from typing import Any

Resource = dict[str, Any]

STU3_PROFILE = "https://zorgnet-hub.nl/fhir/StructureDefinition/eoverdracht-stu3-profile"
XVER = "http://hl7.org/fhir/3.0/StructureDefinition/extension-"
PRACTITIONERROLE_REF = "http://nictiz.nl/fhir/StructureDefinition/practitionerrole-reference"

#: STU3 eOverdracht profile -> the hub's R4 profile for the same thing.
R4_PROFILE = {
    "http://nictiz.nl/fhir/StructureDefinition/eOverdracht-Task": "https://zorgnet-hub.nl/fhir/StructureDefinition/zorgnet-Task-Overdracht",
}
TASK_CODE = {"system": "http://snomed.info/sct", "code": "308292007"}
ADVANCE_NOTICE = {"system": "http://loinc.org", "code": "57830-2"}
NURSING_HANDOFF = {"system": "http://snomed.info/sct", "code": "371535009"}
ALTERNATIVE_DATE = {"system": "http://snomed.info/sct", "code": "146851000146105"}

#: The eOverdracht 4.0 Task states (task-status codes; STU3 and R4 share them).
#: States the receiving organisation sets; the sender sets requested and cancelled.
RECEIVER_STATES = frozenset({"received", "accepted", "rejected", "on-hold", "in-progress", "completed"})
TASK_STATES = ("requested", "received", "accepted", "rejected", "on-hold", "in-progress", "completed", "cancelled")

CLINICAL = {
    "Condition": (
        "http://terminology.hl7.org/CodeSystem/condition-clinical",
        "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    ),
    "AllergyIntolerance": (
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
    ),
}
#: R4 Condition.verificationStatus has no ``unknown``: kept in the cross-version extension instead.
R4_VERIFICATION = {
    "Condition": {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"},
    "AllergyIntolerance": {"unconfirmed", "confirmed", "refuted", "entered-in-error"},
}
GOAL_LIFECYCLE = {
    "proposed": "proposed",
    "accepted": "accepted",
    "planned": "planned",
    "in-progress": "active",
    "on-target": "active",
    "ahead-of-target": "active",
    "behind-target": "active",
    "sustaining": "active",
    "achieved": "completed",
    "on-hold": "on-hold",
    "cancelled": "cancelled",
    "entered-in-error": "entered-in-error",
    "rejected": "rejected",
}
CONSENT_CATEGORY_ACD = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentcategorycodes", "code": "acd"}]
}
CONSENT_SCOPE_ADR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "adr"}]}


# -- helpers ---------------------------------------------------------------------------------------


def _ext_value(value: Any) -> dict[str, Any]:
    """The value[x] element for a cross-version extension holding ``value`` (by its JSON shape)."""
    if isinstance(value, dict):
        if "reference" in value or "display" in value and len(value) <= 3:
            return {"valueReference": value}
        if "start" in value or "end" in value:
            return {"valuePeriod": value}
        return {"valueCodeableConcept": value}
    if isinstance(value, bool):
        return {"valueBoolean": value}
    return {"valueString": str(value)} if not isinstance(value, str) else {"valueCode": value}


def _put_xver(node: dict[str, Any], path: str, value: Any) -> None:
    node.setdefault("extension", []).append({"url": XVER + path, **_ext_value(value)})


def _pop_xver(node: dict[str, Any], path: str) -> list[Any]:
    """Remove and return the values of the cross-version extensions for ``path`` on ``node``."""
    found, kept = [], []
    for ext in node.get("extension") or []:
        if ext.get("url") == XVER + path:
            found.append(next(v for k, v in ext.items() if k.startswith("value")))
        else:
            kept.append(ext)
    if kept:
        node["extension"] = kept
    else:
        node.pop("extension", None)
    return found


def _rename(node: dict[str, Any], old: str, new: str) -> None:
    if old in node:
        node[new] = node.pop(old)


def _to_list(node: dict[str, Any], key: str) -> None:
    if key in node and not isinstance(node[key], list):
        node[key] = [node[key]]


def _from_list(node: dict[str, Any], key: str) -> None:
    if isinstance(node.get(key), list) and len(node[key]) == 1:
        node[key] = node[key][0]


def _profiles_to_r4(res: Resource) -> None:
    meta = res.get("meta") or {}
    profiles = meta.pop("profile", [])
    for url in profiles:
        res.setdefault("extension", []).append({"url": STU3_PROFILE, "valueUri": url})
    r4 = [R4_PROFILE[p] for p in profiles if p in R4_PROFILE]
    if r4:
        meta["profile"] = r4
    if meta:
        res["meta"] = meta
    else:
        res.pop("meta", None)


def _profiles_to_stu3(res: Resource) -> None:
    meta = dict(res.get("meta") or {})
    meta.pop("profile", None)
    for server_field in ("versionId", "lastUpdated", "source"):
        meta.pop(server_field, None)
    profiles = [e["valueUri"] for e in res.get("extension") or [] if e.get("url") == STU3_PROFILE]
    rest = [e for e in res.get("extension") or [] if e.get("url") != STU3_PROFILE]
    if rest:
        res["extension"] = rest
    else:
        res.pop("extension", None)
    if profiles:
        meta["profile"] = profiles
    if meta:
        res["meta"] = meta
    else:
        res.pop("meta", None)


def _status_to_r4(res: Resource, key: str, system: str, allowed: set[str] | None = None) -> None:
    code = res.pop(key, None)
    primitive_ext = res.pop(f"_{key}", None)
    if code is None and primitive_ext is None:
        return
    if code is not None and allowed is not None and code not in allowed:
        _put_xver(res, f"{res['resourceType']}.{key}", code)
        code = None
    concept: dict[str, Any] = {}
    if code is not None:
        concept["coding"] = [{"system": system, "code": code}]
    if primitive_ext:
        concept["extension"] = primitive_ext.get("extension", [])
    if concept:
        res[key] = concept


def _status_to_stu3(res: Resource, key: str) -> None:
    kept = _pop_xver(res, f"{res['resourceType']}.{key}")
    concept = res.pop(key, None)
    code = kept[0] if kept else None
    if concept:
        if concept.get("coding"):
            code = concept["coding"][0]["code"]
        if concept.get("extension"):
            res[f"_{key}"] = {"extension": concept["extension"]}
    if code is not None:
        res[key] = code


def _context_to_r4(res: Resource, key: str = "context") -> None:
    ctx = res.pop(key, None)
    if ctx is None:
        return
    if str(ctx.get("reference", "")).startswith("Encounter/"):
        res["encounter"] = ctx
    else:
        _put_xver(res, f"{res['resourceType']}.{key}", ctx)


def _context_to_stu3(res: Resource, key: str = "context") -> None:
    kept = _pop_xver(res, f"{res['resourceType']}.{key}")
    if "encounter" in res:
        res[key] = res.pop("encounter")
    elif kept:
        res[key] = kept[0]


# -- per resource type -----------------------------------------------------------------------------


def _task_to_r4(res: Resource) -> None:
    requester = res.pop("requester", None)
    if requester:
        agent = requester.get("agent")
        on_behalf = requester.get("onBehalfOf")
        role = next(
            (e["valueReference"] for e in (agent or {}).get("extension") or [] if e.get("url") == PRACTITIONERROLE_REF),
            None,
        )
        chosen = role or on_behalf or agent
        if chosen is not None:
            res["requester"] = chosen
        if agent is not None:
            _put_xver(res, "Task.requester.agent", agent)
        if on_behalf is not None:
            _put_xver(res, "Task.requester.onBehalfOf", on_behalf)
    _context_to_r4(res)
    _rename(res, "definitionUri", "instantiatesUri")
    if "definitionReference" in res:
        _put_xver(res, "Task.definitionReference", res.pop("definitionReference"))


def _task_to_stu3(res: Resource) -> None:
    agents = _pop_xver(res, "Task.requester.agent")
    on_behalf = _pop_xver(res, "Task.requester.onBehalfOf")
    r4_requester = res.pop("requester", None)
    requester: dict[str, Any] = {}
    if agents:
        requester["agent"] = agents[0]
    elif r4_requester is not None:
        requester["agent"] = r4_requester
    if on_behalf:
        requester["onBehalfOf"] = on_behalf[0]
    if requester:
        res["requester"] = requester
    _context_to_stu3(res)
    _rename(res, "instantiatesUri", "definitionUri")
    definition = _pop_xver(res, "Task.definitionReference")
    if definition:
        res["definitionReference"] = definition[0]


#: R4's cmp-1 wants text, entries or sub-sections in every section; an STU3 section with none of them
#: (only a code, an emptyReason, an extension) gets a narrative saying it is empty, marked so that it is
#: dropped again going back to STU3.
EMPTY_SECTION = "https://zorgnet-hub.nl/fhir/StructureDefinition/eoverdracht-empty-section-text"


def _empty_sections_to_r4(node: Any) -> None:
    for section in node.get("section") or [] if isinstance(node, dict) else []:
        if isinstance(section, dict):
            if not (section.get("text") or section.get("entry") or section.get("section")):
                reason = ((section.get("emptyReason") or {}).get("coding") or [{}])[0].get("display", "geen gegevens")
                section["text"] = {
                    "extension": [{"url": EMPTY_SECTION, "valueBoolean": True}],
                    "status": "generated",
                    "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{html.escape(str(reason))}</div>',
                }
            _empty_sections_to_r4(section)


def _empty_sections_to_stu3(node: Any) -> None:
    for section in node.get("section") or [] if isinstance(node, dict) else []:
        if isinstance(section, dict):
            text = section.get("text")
            if isinstance(text, dict) and any(e.get("url") == EMPTY_SECTION for e in text.get("extension") or []):
                del section["text"]
            _empty_sections_to_stu3(section)


def _composition_to_r4(res: Resource) -> None:
    _empty_sections_to_r4(res)
    if "class" in res:
        res["category"] = [res.pop("class")]
    attesters = []
    for attester in res.pop("attester", []) or []:
        for mode in attester.get("mode") or []:
            attesters.append({**{k: v for k, v in attester.items() if k != "mode"}, "mode": mode})
    if attesters:
        res["attester"] = attesters


def _composition_to_stu3(res: Resource) -> None:
    _empty_sections_to_stu3(res)
    categories = res.pop("category", None)
    if categories:
        res["class"] = categories[0]
    attesters: list[dict[str, Any]] = []
    for attester in res.pop("attester", []) or []:
        rest = {k: v for k, v in attester.items() if k != "mode"}
        same = next((a for a in attesters if {k: v for k, v in a.items() if k != "mode"} == rest), None)
        if same is not None:
            same["mode"].append(attester["mode"])
        else:
            attesters.append({"mode": [attester["mode"]], **rest})
    if attesters:
        res["attester"] = attesters


def _encounter_to_r4(res: Resource) -> None:
    _rename(res, "reason", "reasonCode")
    _rename(res, "incomingReferral", "basedOn")
    _to_list(res, "appointment")


def _encounter_to_stu3(res: Resource) -> None:
    _rename(res, "reasonCode", "reason")
    _rename(res, "basedOn", "incomingReferral")
    _from_list(res, "appointment")


def _observation_to_r4(res: Resource) -> None:
    if "comment" in res:
        res["note"] = [{"text": res.pop("comment")}]
    _context_to_r4(res)


def _observation_to_stu3(res: Resource) -> None:
    notes = res.pop("note", None)
    if notes:
        res["comment"] = notes[0]["text"]
    _context_to_stu3(res)


def _clinical_to_r4(res: Resource) -> None:
    clinical, verification = CLINICAL[res["resourceType"]]
    _status_to_r4(res, "clinicalStatus", clinical)
    _status_to_r4(res, "verificationStatus", verification, R4_VERIFICATION[res["resourceType"]])
    if res["resourceType"] == "Condition":
        _to_list(res, "stage")
        _context_to_r4(res)
        if "assertedDate" in res:
            _rename(res, "assertedDate", "recordedDate")
    else:
        _rename(res, "assertedDate", "recordedDate")


def _clinical_to_stu3(res: Resource) -> None:
    _status_to_stu3(res, "clinicalStatus")
    _status_to_stu3(res, "verificationStatus")
    if res["resourceType"] == "Condition":
        _from_list(res, "stage")
        _context_to_stu3(res)
    _rename(res, "recordedDate", "assertedDate")


def _careplan_to_r4(res: Resource) -> None:
    for activity in res.get("activity") or []:
        detail = activity.get("detail") or {}
        if "category" in detail:
            _put_xver(detail, "CarePlan.activity.detail.category", detail.pop("category"))
    _context_to_r4(res)


def _careplan_to_stu3(res: Resource) -> None:
    for activity in res.get("activity") or []:
        detail = activity.get("detail") or {}
        kept = _pop_xver(detail, "CarePlan.activity.detail.category")
        if kept:
            detail["category"] = kept[0]
    _context_to_stu3(res)


def _consent_to_r4(res: Resource) -> None:
    _rename(res, "consentingParty", "performer")
    _to_list(res, "identifier")
    res["scope"] = copy.deepcopy(CONSENT_SCOPE_ADR)
    if any(c.get("code") == "11341000146107" for cat in res.get("category") or [] for c in cat.get("coding") or []):
        # the zib2020 AdvanceDirective's category (terminology.hl7.org did not exist in STU3: dropped going back)
        res["category"] = [*res["category"], copy.deepcopy(CONSENT_CATEGORY_ACD)]
    provision = {k: res.pop(k) for k in ("period", "actor", "action") if k in res}
    if provision:
        res["provision"] = provision


def _consent_to_stu3(res: Resource) -> None:
    _rename(res, "performer", "consentingParty")
    if isinstance(res.get("identifier"), list):  # STU3 has one: the sender's own comes first
        res["identifier"] = res["identifier"][0]
    if "category" in res:
        res["category"] = [c for c in res["category"] if c != CONSENT_CATEGORY_ACD]
    res.pop("scope", None)
    res.update(res.pop("provision", {}) or {})


def _device_use_to_r4(res: Resource) -> None:
    if "whenUsed" in res:
        _put_xver(res, "DeviceUseStatement.whenUsed", res.pop("whenUsed"))
    _rename(res, "indication", "reasonCode")


def _device_use_to_stu3(res: Resource) -> None:
    kept = _pop_xver(res, "DeviceUseStatement.whenUsed")
    if kept:
        res["whenUsed"] = kept[0]
    _rename(res, "reasonCode", "indication")


def _goal_to_r4(res: Resource) -> None:
    status = res.pop("status", None)
    if status is not None:
        res["lifecycleStatus"] = GOAL_LIFECYCLE[status]
        if GOAL_LIFECYCLE[status] != status:
            _put_xver(res, "Goal.status", status)
    _to_list(res, "target")


def _goal_to_stu3(res: Resource) -> None:
    kept = _pop_xver(res, "Goal.status")
    lifecycle = res.pop("lifecycleStatus", None)
    if kept:
        res["status"] = kept[0]
    elif lifecycle is not None:
        res["status"] = lifecycle
    _from_list(res, "target")


def _coverage_to_r4(res: Resource) -> None:
    if "status" not in res:
        res["status"] = "active"
        _put_xver(res, "Coverage.status", "absent")


def _coverage_to_stu3(res: Resource) -> None:
    if _pop_xver(res, "Coverage.status") == ["absent"]:
        res.pop("status", None)


def _flag_to_r4(res: Resource) -> None:
    _to_list(res, "category")


def _flag_to_stu3(res: Resource) -> None:
    _from_list(res, "category")


def _related_person_to_r4(res: Resource) -> None:
    _to_list(res, "relationship")


def _related_person_to_stu3(res: Resource) -> None:
    _from_list(res, "relationship")


def _nutrition_to_r4(res: Resource) -> None:
    res.setdefault("intent", "order")


def _nutrition_to_stu3(res: Resource) -> None:
    res.pop("intent", None)


Rule = Callable[[Resource], None]
RULES: dict[str, tuple[Rule, Rule]] = {
    "Task": (_task_to_r4, _task_to_stu3),
    "Composition": (_composition_to_r4, _composition_to_stu3),
    "Encounter": (_encounter_to_r4, _encounter_to_stu3),
    "Observation": (_observation_to_r4, _observation_to_stu3),
    "Condition": (_clinical_to_r4, _clinical_to_stu3),
    "AllergyIntolerance": (_clinical_to_r4, _clinical_to_stu3),
    "CarePlan": (_careplan_to_r4, _careplan_to_stu3),
    "Consent": (_consent_to_r4, _consent_to_stu3),
    "DeviceUseStatement": (_device_use_to_r4, _device_use_to_stu3),
    "Goal": (_goal_to_r4, _goal_to_stu3),
    "Coverage": (_coverage_to_r4, _coverage_to_stu3),
    "Flag": (_flag_to_r4, _flag_to_stu3),
    "RelatedPerson": (_related_person_to_r4, _related_person_to_stu3),
    "NutritionOrder": (_nutrition_to_r4, _nutrition_to_stu3),
}


def to_r4(stu3: Resource) -> Resource:
    """One eOverdracht STU3 resource as R4 (a new dict; the input is left alone)."""
    res = copy.deepcopy(stu3)
    rule = RULES.get(res["resourceType"])
    if rule is not None:
        rule[0](res)
    _profiles_to_r4(res)
    return res


def to_stu3(r4: Resource) -> Resource:
    """One hub R4 resource as eOverdracht STU3 (a new dict; the input is left alone)."""
    res = copy.deepcopy(r4)
    _profiles_to_stu3(res)
    rule = RULES.get(res["resourceType"])
    if rule is not None:
        rule[1](res)
    return res


class InvalidResource(ValueError):
    """A resource the fhir.resources models refuse; names the resource and the offending elements."""


def _check(models: Any, res: Resource, version: str) -> None:
    from pydantic import ValidationError

    try:
        model = models.get_fhir_model_class(res.get("resourceType", ""))
    except (KeyError, ValueError) as exc:
        raise InvalidResource(f"{version} resource type {res.get('resourceType')!r} unknown") from exc
    try:
        model.model_validate(res)
    except ValidationError as exc:
        where = "; ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors()[:5])
        raise InvalidResource(f"{version} {res.get('resourceType')}/{res.get('id')} invalid: {where}") from exc


def check_stu3(res: Resource) -> None:
    """Raise :class:`InvalidResource` unless ``res`` is valid FHIR STU3."""
    from fhir.resources import STU3

    _check(STU3, res, "STU3")


def check_r4(res: Resource) -> None:
    """Raise :class:`InvalidResource` unless ``res`` is valid FHIR R4 (checked with the R4B models,
    which share R4's structure for every resource type eOverdracht uses)."""
    from fhir.resources import R4B

    _check(R4B, res, "R4")
