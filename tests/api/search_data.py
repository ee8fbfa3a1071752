"""The fixed data set of the search matrix: every parameter type, with values chosen at the edges."""

from __future__ import annotations

from typing import Any

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
TAGS = "http://zorgnet.nl/tags"


def _code(code: str, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": LOINC, "code": code}
    if display:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def _qty(value: float, code: str | None = "kg", unit: str = "kg", system: str | None = UCUM) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value, "unit": unit}
    if system:
        out["system"] = system
    if code:
        out["code"] = code
    return out


def _obs(oid: str, code: dict[str, Any], status: str = "final", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": status, "code": code, **extra}


PATIENTS: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {
            "tag": [{"system": TAGS, "code": "pilot"}],
            "profile": ["http://example.org/StructureDefinition/patient-a"],
            "security": [{"system": CONF, "code": "R"}],
            "source": "http://source.example/system-a#123",
        },
        "identifier": [
            {
                "system": BSN,
                "value": "111222333",
                "type": {"coding": [{"system": V2, "code": "NNNLD"}], "text": "BSN"},
            },
            {
                "system": "http://example.org/mrn",
                "value": "M1",
                "type": {"coding": [{"system": V2, "code": "MR"}]},
            },
        ],
        "active": True,
        "name": [{"family": "Smit", "given": ["Johanna"]}],
        "telecom": [{"system": "phone", "value": "0612345678"}],
        "gender": "female",
        "birthDate": "1980-05-17",
        "address": [{"city": "Den Haag"}],
        "generalPractitioner": [{"reference": "Practitioner/pr1"}],
        "managingOrganization": {"reference": "Organization/o1"},
    },
    {
        "resourceType": "Patient",
        "id": "p2",
        "meta": {
            "tag": [{"system": TAGS, "code": "test"}],
            "profile": ["http://example.org/StructureDefinition/patient-b"],
            "source": "http://source.example/system-b",
        },
        "identifier": [{"system": "http://example.org/other", "value": "111222333"}],
        "name": [{"family": "Smitsen", "given": ["Piet"]}],
        "gender": "male",
        "birthDate": "1980-05",
        "deceasedDateTime": "2020-02-29T23:30:00-05:00",
        "managingOrganization": {"reference": "Organization/o2"},
    },
    {
        "resourceType": "Patient",
        "id": "p3",
        "meta": {"tag": [{"code": "pilot"}]},
        "identifier": [{"value": "333"}],
        "name": [{"family": "Müller", "given": ["Zoë"]}],
        "gender": "other",
        "birthDate": "1979",
        "managingOrganization": {"reference": "Organization/o3"},
    },
    {"resourceType": "Patient", "id": "p4", "identifier": [{"system": BSN, "value": "444444403"}]},
    {
        "resourceType": "Patient",
        "id": "p5",
        "identifier": [{"system": BSN, "value": "555555501"}],
        "active": False,
        "name": [{"family": "de Vries-Bakker", "given": ["Anna"]}, {"text": "100% zeker_x"}],
        "gender": "female",
        "birthDate": "1981-01-01",
        "generalPractitioner": [{"reference": "Organization/o1"}],
    },
]

OTHERS: list[dict[str, Any]] = [
    {
        "resourceType": "Practitioner",
        "id": "pr1",
        "name": [{"family": "de Vries", "given": ["Karel"]}],
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers", "value": "UZI1"}],
    },
    {"resourceType": "Practitioner", "id": "pr2", "name": [{"family": "Jansen"}]},
    {
        "resourceType": "Organization",
        "id": "o1",
        "name": "Zorg Alpha",
        "partOf": {"reference": "Organization/o2"},
    },
    {
        "resourceType": "Organization",
        "id": "o2",
        "name": "Zorg Beta",
        "partOf": {"reference": "Organization/o3"},
    },
    {
        "resourceType": "Organization",
        "id": "o3",
        "name": "Koepel Gamma",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/agb-z", "value": "AGB3"}],
    },
    _obs(
        "ob1",
        _code("29463-7", "Body weight", "Gewicht"),
        subject={"reference": "Patient/p1"},
        performer=[{"reference": "Practitioner/pr1"}],
        effectiveDateTime="2021-03-04T10:15:30+01:00",
        valueQuantity=_qty(70.5),
    ),
    _obs(
        "ob2",
        _code("29463-7"),
        subject={"reference": "http://hub.test/fhir/Patient/p2"},
        performer=[{"reference": "Practitioner/pr2"}],
        effectiveDateTime="2021-03",
        valueQuantity=_qty(80),
    ),
    _obs(
        "ob3",
        _code("29463-7"),
        "amended",
        subject={"reference": "http://other.example/fhir/Patient/p1"},
        effectivePeriod={"start": "2021-01-01", "end": "2021-12-31"},
        valueQuantity=_qty(95.25, code=None, system=None),
    ),
    _obs(
        "ob4",
        _code("85354-9", "Blood pressure panel"),
        subject={"reference": "Patient/p3"},
        effectiveInstant="2021-03-04T09:15:30.123Z",
        component=[
            {"code": _code("8480-6"), "valueQuantity": _qty(120, "mm[Hg]", "mmHg")},
            {"code": _code("8462-4"), "valueQuantity": _qty(80, "mm[Hg]", "mmHg")},
        ],
    ),
    _obs(
        "ob5",
        {"text": "vrije notitie"},
        "preliminary",
        subject={"identifier": {"system": BSN, "value": "111222333"}},
        effectiveTiming={"event": ["2020-06-01", "2020-06-30T12:00:00Z"]},
        valueString="Héllo Wereld",
    ),
    _obs("ob6", _code("29463-7"), valueQuantity=_qty(150, "g", "g")),
    _obs(
        "ob7",
        _code("8867-4"),
        "cancelled",
        subject={"reference": "Patient/p5"},
        effectiveDateTime="2021-03-05",
        valueQuantity=_qty(60, "/min", "/min"),
    ),
    _obs(
        "ob8",
        _code("8867-4"),
        "registered",
        subject={"reference": "Patient/p5"},
        effectivePeriod={"start": "2022-01-01T00:00:00Z"},
    ),
    {
        "resourceType": "RiskAssessment",
        "id": "ra1",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "prediction": [{"probabilityDecimal": 0.25}],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra2",
        "status": "final",
        "subject": {"reference": "Patient/p2"},
        "prediction": [{"probabilityDecimal": 100}],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra3",
        "status": "final",
        "subject": {"reference": "Patient/p3"},
        "prediction": [{"probabilityDecimal": 0.5}],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra4",
        "status": "final",
        "subject": {"reference": "Patient/p4"},
        "prediction": [{"outcome": {"text": "onbekend"}}],
    },
    {
        "resourceType": "ValueSet",
        "id": "vs1",
        "status": "active",
        "url": "http://example.org/fhir/ValueSet/a",
    },
    {
        "resourceType": "ValueSet",
        "id": "vs2",
        "status": "active",
        "url": "http://example.org/fhir/ValueSet/a/b",
    },
    {"resourceType": "ValueSet", "id": "vs3", "status": "active", "url": "http://other.org/vs"},
    {"resourceType": "ValueSet", "id": "vs4", "status": "draft"},
]

RESOURCES = [*PATIENTS, *OTHERS]
