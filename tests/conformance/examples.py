"""Valid example instances of the hub's profiles, built fresh on each call so tests may mutate them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HUB = "https://zorgnet-hub.nl/fhir"
SD = f"{HUB}/StructureDefinition/"
IKNL = "https://fhir.iknl.nl/fhir/StructureDefinition/"
SCT = "http://snomed.info/sct"


def _meta(url: str) -> dict[str, Any]:
    return {"profile": [url]}


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "client-1",
        "meta": _meta(SD + "zorgnet-Patient"),
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999911120"}],
        "name": [{"use": "official", "family": "Jansen", "given": ["Grietje"]}],
        "gender": "female",
        "birthDate": "1938-04-12",
    }


def practitioner() -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": "wijkvp-1",
        "meta": _meta(SD + "zorgnet-Practitioner"),
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/big", "value": "19012345678"}],
        "name": [{"family": "de Vries", "given": ["Anna"]}],
    }


def practitioner_role() -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "id": "wijkvp-1-role",
        "meta": _meta(SD + "zorgnet-PractitionerRole"),
        "practitioner": {"reference": "Practitioner/wijkvp-1"},
        "organization": {"reference": "Organization/thuiszorg-1"},
    }


def organization() -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": "thuiszorg-1",
        "meta": _meta(SD + "zorgnet-Organization"),
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "90000123"}],
        "name": "Thuiszorg De Linde",
    }


def contact_person() -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "id": "mantelzorger-1",
        "meta": _meta(SD + "zorgnet-ContactPerson"),
        "patient": {"reference": "Patient/client-1"},
        "relationship": [
            {
                "coding": [
                    {
                        "system": "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4.23.1",
                        "code": "100001",
                        "display": "Mantelzorger",
                    }
                ]
            }
        ],
        "name": [{"family": "Jansen", "given": ["Kees"]}],
    }


def care_team() -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "id": "netwerk-1",
        "meta": _meta(SD + "zorgnet-CareTeam"),
        "status": "active",
        "subject": {"reference": "Patient/client-1"},
        "participant": [
            {"role": [{"text": "client"}], "member": {"reference": "Patient/client-1"}},
            {"role": [{"text": "mantelzorger"}], "member": {"reference": "RelatedPerson/mantelzorger-1"}},
            {
                "role": [{"text": "wijkverpleegkundige"}],
                "member": {"reference": "PractitionerRole/wijkvp-1-role"},
                "onBehalfOf": {"reference": "Organization/thuiszorg-1"},
            },
        ],
    }


def care_plan() -> dict[str, Any]:
    kind = SD + "ext-ActivityPerformerKind"
    return {
        "resourceType": "CarePlan",
        "id": "zorgplan-1",
        "meta": _meta(SD + "zorgnet-CarePlan"),
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": f"{HUB}/CodeSystem/careplan-category", "code": "gedeeld-zorgplan"}]}],
        "subject": {"reference": "Patient/client-1"},
        "careTeam": [{"reference": "CareTeam/netwerk-1"}],
        "goal": [{"reference": "Goal/doel-1"}],
        "activity": [
            {
                "detail": {
                    "extension": [{"url": kind, "valueCode": "professional"}],
                    "code": {
                        "coding": [{"system": f"{HUB}/CodeSystem/care-activity", "code": "persoonlijke-verzorging"}]
                    },
                    "status": "in-progress",
                    "performer": [{"reference": "PractitionerRole/wijkvp-1-role"}],
                }
            },
            {
                "detail": {
                    "extension": [{"url": kind, "valueCode": "mantelzorger"}],
                    "code": {"coding": [{"system": f"{HUB}/CodeSystem/care-activity", "code": "maaltijden"}]},
                    "status": "in-progress",
                    "performer": [{"reference": "RelatedPerson/mantelzorger-1"}],
                }
            },
            {
                "detail": {
                    "extension": [{"url": kind, "valueCode": "organisatie"}],
                    "code": {"coding": [{"system": f"{HUB}/CodeSystem/care-activity", "code": "respijtzorg"}]},
                    "status": "scheduled",
                    "scheduledPeriod": {"start": "2025-03-01", "end": "2025-03-08"},
                    "description": "Logeerweek zodat de mantelzorger op vakantie kan",
                }
            },
        ],
    }


def client_goal() -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": "doel-1",
        "meta": _meta(SD + "zorgnet-ClientGoal"),
        "lifecycleStatus": "active",
        "category": [{"coding": [{"system": f"{HUB}/CodeSystem/goal-category", "code": "eigen-doel"}]}],
        "description": {"text": "Ik wil zo lang mogelijk thuis blijven wonen"},
        "subject": {"reference": "Patient/client-1"},
        "expressedBy": {"reference": "Patient/client-1"},
    }


def treatment_directive() -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": "acp-td-1",
        "meta": _meta(IKNL + "ACP-TreatmentDirective"),
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]},
        "category": [{"coding": [{"system": SCT, "code": "129125009", "display": "procedure with explicit context"}]}],
        "patient": {"reference": "Patient/client-1"},
        "dateTime": "2024-10-01",
        "policy": [{"uri": "https://wetten.overheid.nl/"}],
        "provision": {
            "type": "deny",
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "CST",
                            }
                        ]
                    },
                    "reference": {"reference": "Patient/client-1", "type": "Patient"},
                }
            ],
            "code": [{"coding": [{"system": SCT, "code": "89666000", "display": "Cardiopulmonary resuscitation"}]}],
        },
    }


def euthanasia_position() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "acp-euth-1",
        "meta": _meta(IKNL + "ACP-PositionRegardingEuthanasia"),
        "status": "final",
        "code": {"coding": [{"system": SCT, "code": "340171000146104"}]},
        "subject": {"reference": "Patient/client-1"},
        "encounter": {"reference": "Encounter/acp-gesprek-1"},
        "valueCodeableConcept": {
            "coding": [{"system": SCT, "code": "340201000146103", "display": "Wenst geen euthanasie"}]
        },
    }


def medical_policy_goal() -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": "acp-goal-1",
        "meta": _meta(IKNL + "ACP-Medical-Policy-Goal"),
        "extension": [
            {
                "url": IKNL + "ext-EncounterReference",
                "valueReference": {"reference": "Encounter/acp-gesprek-1"},
            }
        ],
        "lifecycleStatus": "active",
        "description": {
            "coding": [{"system": SCT, "code": "713148004", "display": "voorkomen en behandelen van symptomen"}]
        },
        "subject": {"reference": "Patient/client-1"},
    }


def overdracht_task() -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": "overdracht-1",
        "meta": _meta(SD + "zorgnet-Task-Overdracht"),
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": SCT, "code": "308292007", "display": "overdracht van zorg"}]},
        "for": {"reference": "Patient/client-1"},
        "requester": {"reference": "Organization/ziekenhuis-1"},
        "owner": {"reference": "Organization/thuiszorg-1"},
        "input": [
            {
                "type": {"coding": [{"system": "http://loinc.org", "code": "57830-2"}]},
                "valueReference": {"reference": "Composition/aanmelding-1"},
            }
        ],
    }


def handoff_composition() -> dict[str, Any]:
    def section(code: str, title: str, subs: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        s: dict[str, Any] = {
            "title": title,
            "code": {"coding": [{"system": SCT, "code": code}]},
            "text": {
                "status": "generated",
                "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{title}</div>',
            },
        }
        if subs:
            s["section"] = [section(c, t) for c, t in subs]
        return s

    return {
        "resourceType": "Composition",
        "id": "handoff-1",
        "meta": _meta(SD + "zorgnet-Composition-NursingHandoff"),
        "status": "final",
        "type": {"coding": [{"system": SCT, "code": "11171000146100", "display": "verpleegkundige overdracht"}]},
        "subject": {"reference": "Patient/client-1"},
        "date": "2025-02-01T10:00:00+01:00",
        "author": [{"reference": "Organization/ziekenhuis-1"}],
        "title": "Verpleegkundige overdracht",
        "section": [
            section(
                "405624007",
                "Administratieve gegevens",
                [("302147001", "Persoonsgegevens"), ("185362004", "Verzendende organisatie")],
            ),
            section(
                "371524004",
                "Medische context",
                [("52870002", "Medische diagnose"), ("420134006", "Allergie")],
            ),
            section("773130005", "Zorgplan", [("86644006", "Actuele problemen")]),
        ],
    }


def toewijzing() -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": "wmo-1",
        "meta": _meta(SD + "zorgnet-ServiceRequest-Toewijzing"),
        "extension": [
            {
                "url": SD + "ext-WmoFrequentie",
                "valueCoding": {"system": f"{HUB}/CodeSystem/iwmo-frequentie", "code": "2"},
            }
        ],
        "identifier": [{"system": f"{HUB}/NamingSystem/iwmo-toewijzingnummer", "value": "TW-2025-0001"}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": f"{HUB}/CodeSystem/servicerequest-category", "code": "wmo-toewijzing"}]}],
        "code": {
            "coding": [{"system": f"{HUB}/CodeSystem/iwmo-productcategorie", "code": "02", "display": "Begeleiding"}]
        },
        "quantityQuantity": {
            "value": 4,
            "unit": "Uur",
            "system": f"{HUB}/CodeSystem/iwmo-eenheid",
            "code": "04",
        },
        "subject": {"reference": "Patient/client-1"},
        "occurrencePeriod": {"start": "2025-01-01", "end": "2025-12-31"},
        "requester": {"reference": "Organization/gemeente-1"},
        "performer": [{"reference": "Organization/thuiszorg-1"}],
        "basedOn": [{"reference": "CarePlan/zorgplan-1"}],
    }


def consent() -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": "toestemming-1",
        "meta": _meta(SD + "zorgnet-Consent"),
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": f"{HUB}/CodeSystem/consent-category", "code": "gegevensdeling"}]}],
        "patient": {"reference": "Patient/client-1"},
        "dateTime": "2025-01-05",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "period": {"start": "2025-01-05", "end": "2026-01-05"},
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": "Organization/thuiszorg-1"},
                }
            ],
            "code": [{"coding": [{"system": f"{HUB}/CodeSystem/data-category", "code": "zorgplan"}]}],
        },
    }


def handoff_bundle(entries: int = 40) -> dict[str, Any]:
    """A document Bundle: the handoff Composition, the client, observations and conditions."""
    items: list[dict[str, Any]] = [handoff_composition(), patient(), organization(), practitioner()]
    i = 0
    while len(items) < entries:
        i += 1
        if i % 2:
            items.append(
                {
                    "resourceType": "Observation",
                    "id": f"obs-{i}",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
                    "subject": {"reference": "Patient/client-1"},
                    "effectiveDateTime": "2025-02-01T08:00:00+01:00",
                    "valueQuantity": {
                        "value": 60 + i,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                }
            )
        else:
            items.append(
                {
                    "resourceType": "Condition",
                    "id": f"cond-{i}",
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {"coding": [{"system": SCT, "code": "38341003", "display": "Hypertensive disorder"}]},
                    "subject": {"reference": "Patient/client-1"},
                }
            )
    return {
        "resourceType": "Bundle",
        "id": "handoff-bundle-1",
        "type": "document",
        "timestamp": "2025-02-01T10:00:00+01:00",
        "identifier": {
            "system": "urn:ietf:rfc:3986",
            "value": "urn:uuid:5b0e8a3e-57e5-4a8c-9c1e-6c1f3a1d2b40",
        },
        "entry": [
            {"fullUrl": f"https://zorgnet-hub.nl/fhir/{r['resourceType']}/{r['id']}", "resource": r} for r in items
        ],
    }


ALL = {
    "zorgnet-Patient": patient,
    "zorgnet-Practitioner": practitioner,
    "zorgnet-PractitionerRole": practitioner_role,
    "zorgnet-Organization": organization,
    "zorgnet-ContactPerson": contact_person,
    "zorgnet-CareTeam": care_team,
    "zorgnet-CarePlan": care_plan,
    "zorgnet-ClientGoal": client_goal,
    "ACP-TreatmentDirective": treatment_directive,
    "ACP-PositionRegardingEuthanasia": euthanasia_position,
    "ACP-Medical-Policy-Goal": medical_policy_goal,
    "zorgnet-Task-Overdracht": overdracht_task,
    "zorgnet-Composition-NursingHandoff": handoff_composition,
    "zorgnet-ServiceRequest-Toewijzing": toewijzing,
    "zorgnet-Consent": consent,
}
