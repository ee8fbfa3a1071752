"""The huisarts mapping, type by type and field by field: GP records (STU3 zib2017 and R4 zib2020) in,
the hub's R4 nl-core resources out; and the summary filter. No I/O: the records come from the fake GP
system's fixture builder, the expectations are written out here."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from adapters.common.harness import MISSING, assert_fields
from adapters.huisarts.mapping import Context, MappingError, entered_in_error, in_summary, to_hub
from tests.adapters.gp_system.fixtures import Practice

TODAY = date(2026, 11, 30)
NL = "http://nictiz.nl/fhir/StructureDefinition/"
SRC = "urn:zorgnet:huisarts:de-linde:"
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def ctx(version: str) -> Context:
    return Context(
        "de-linde", "Huisartsenpraktijk De Linde", "00012345", "https://his.example/fhir", version, "hub-pat-1", TODAY
    )


@pytest.fixture(scope="module", params=["stu3", "r4"])
def practice(request: pytest.FixtureRequest) -> Practice:
    return Practice(12, version=request.param, today=TODAY)


def source(practice: Practice, kind: str, rid: str) -> dict[str, Any]:
    return practice.resources[kind][rid]


def test_condition(practice: Practice) -> None:
    out = to_hub(source(practice, "Condition", "p0000-cond"), ctx(practice.version))
    assert_fields(
        out,
        {
            "resourceType": "Condition",
            "meta.profile": [NL + "nl-core-Problem"],
            "meta.source": "https://his.example/fhir/Condition/p0000-cond",
            "identifier[0]": {"system": SRC + "Condition", "value": "p0000-cond"},
            "identifier[1].value": "p0000-c1",
            "clinicalStatus.coding[0]": {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active",
            },
            f"verificationStatus.coding[system={VER}].code": "confirmed",
            "verificationStatus.coding[system=http://snomed.info/sct].code": "410605003",
            "category[0].coding[0].code": "282291009",
            "code.coding[0]": {
                "system": "http://hl7.org/fhir/sid/icpc-1-nl",
                "code": "K78",
                "display": "Boezemfibrilleren/-fladderen",
            },
            "subject": {"reference": "Patient/hub-pat-1"},
            "onsetDateTime": (TODAY - timedelta(days=400)).isoformat(),
            "recordedDate": (TODAY - timedelta(days=400)).isoformat(),
            "asserter": {"display": "A. de Vries"},
        },
        "Condition",
    )
    assert "assertedDate" not in out  # STU3 only: became recordedDate


def test_episode_of_care_links_its_problem_by_source_identifier(practice: Practice) -> None:
    out = to_hub(source(practice, "EpisodeOfCare", "p0000-ep"), ctx(practice.version))
    assert_fields(
        out,
        {
            "meta.profile": [NL + "nl-core-EpisodeOfCare"],
            "status": "active",
            "extension[0]": {
                "url": NL + "ext-EpisodeOfCare.EpisodeOfCareName",
                "valueString": "Boezemfibrilleren/-fladderen",
            },
            "diagnosis[0].condition.reference": f"Condition?identifier={SRC}Condition|p0000-cond",
            "patient": {"reference": "Patient/hub-pat-1"},
            "managingOrganization.identifier": {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "00012345"},
            "period.start": (TODAY - timedelta(days=400)).isoformat(),
        },
        "EpisodeOfCare",
    )


def test_alert(practice: Practice) -> None:
    out = to_hub(source(practice, "Flag", "p0000-alert"), ctx(practice.version))
    assert_fields(
        out,
        {
            "meta.profile": [NL + "nl-core-Alert"],
            "status": "active",
            "category[0].coding[0].code": "74018-3",
            "code.coding[0].code": "K78",
            "subject": {"reference": "Patient/hub-pat-1"},
            "author": {"display": "A. de Vries"},
        },
        "Flag",
    )


def test_allergy(practice: Practice) -> None:
    out = to_hub(source(practice, "AllergyIntolerance", "p0000-allergy"), ctx(practice.version))
    assert_fields(
        out,
        {
            "meta.profile": [NL + "nl-core-AllergyIntolerance"],
            "clinicalStatus.coding[0].code": "active",
            "verificationStatus.coding[0]": {
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "code": "confirmed",
            },
            "category": ["medication"],
            "criticality": "high",
            "code.coding[0].code": "1112821",
            "patient": {"reference": "Patient/hub-pat-1"},
            "recordedDate": (TODAY - timedelta(days=800)).isoformat(),
            "assertedDate": MISSING,
        },
        "AllergyIntolerance",
    )


def test_medication_request_takes_the_product_and_r4_dosage(practice: Practice) -> None:
    request = source(practice, "MedicationRequest", "p0000-mr")
    medication = source(practice, "Medication", "p0000-med")
    out = to_hub(request, ctx(practice.version), medication=medication)
    assert_fields(
        out,
        {
            "meta.profile": MISSING,
            "status": "active",
            "intent": "order",
            "category[0].coding[0].code": "16076005",
            "medicationCodeableConcept.coding[0]": {
                "system": "urn:oid:2.16.840.1.113883.2.4.4.1",
                "code": "70785",
                "display": "METOPROLOL TABLET 50MG",
            },
            "medicationReference": MISSING,
            "requester": {"display": "A. de Vries"},
            "dosageInstruction[0].timing.repeat": {"frequency": 2, "period": 1, "periodUnit": "d"},
            "subject": {"reference": "Patient/hub-pat-1"},
        },
        "MedicationRequest",
    )
    with pytest.raises(MappingError, match="Medication is not in the GP's answer"):
        to_hub({**request, "medicationReference": {"reference": "Medication/x"}}, ctx(practice.version))


def test_stu3_dosage_moves_into_dose_and_rate() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "id": "m",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "X"},
        "dosageInstruction": [{"text": "1 tablet", "doseQuantity": {"value": 1, "unit": "stuk"}}],
    }
    out = to_hub(request, ctx("stu3"))
    assert out["dosageInstruction"] == [
        {"text": "1 tablet", "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "stuk"}}]}
    ]


@pytest.mark.parametrize(
    ("rid", "profile", "loinc", "category"),
    [
        ("p0000-bp", "nl-core-BloodPressure", "85354-9", "vital-signs"),
        ("p0000-weight", "nl-core-BodyWeight", "29463-7", "vital-signs"),
        ("p0000-egfr", "nl-core-LaboratoryTestResult", "62238-1", "laboratory"),
    ],
)
def test_measurements(practice: Practice, rid: str, profile: str, loinc: str, category: str) -> None:
    src = source(practice, "Observation", rid)
    out = to_hub(src, ctx(practice.version))
    assert_fields(
        out,
        {
            "meta.profile": [NL + profile],
            "status": "final",
            "code.coding[system=http://loinc.org].code": loinc,
            "category[0].coding[0]": {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": category,
            },
            "subject": {"reference": "Patient/hub-pat-1"},
            "effectiveDateTime": src["effectiveDateTime"],
        },
        rid,
    )
    for name in ("valueQuantity", "component"):
        assert out.get(name) == src.get(name)


def test_soep_line(practice: Practice) -> None:
    out = to_hub(source(practice, "Observation", "p0000-soep-e"), ctx(practice.version))
    assert_fields(
        out,
        {
            "meta.profile": [NL + "nl-core-SOAPReport.SOAPLine"],
            "code.coding[0]": {"system": "http://snomed.info/sct", "code": "129265001", "display": "evaluatie"},
            "valueString": "Verhoogd valrisico bij orthostatische hypotensie.",
            "meta.tag": MISSING,
        },
        "SOEP line",
    )


def test_treatment_directive_becomes_the_acp_profile(practice: Practice) -> None:
    out = to_hub(source(practice, "Consent", "p0000-nr"), ctx(practice.version))
    assert_fields(
        out,
        {
            "meta.profile": ["https://fhir.iknl.nl/fhir/StructureDefinition/ACP-TreatmentDirective"],
            "status": "active",
            "scope.coding[0].code": "treatment",
            "provision.type": "deny",
            "provision.code[0].coding[0].code": "89666000",
            "provision.actor[0].reference": {"reference": "Patient/hub-pat-1"},
            "patient": {"reference": "Patient/hub-pat-1"},
        },
        "Consent",
    )


def test_summary_filter(practice: Practice) -> None:
    def kept(kind: str, rid: str, **kw: bool) -> bool:
        return in_summary(source(practice, kind, rid), TODAY, **kw)

    assert kept("Condition", "p0000-cond") and not kept("Condition", "p0004-cond")  # inactive problem
    assert kept("Condition", "p0004-cond", synced_before=True)  # but a change follows
    assert kept("EpisodeOfCare", "p0000-ep") and not kept("EpisodeOfCare", "p0004-ep")  # finished episode
    assert kept("Observation", "p0000-weight") and not kept("Observation", "p0000-weight-old")  # 900 days ago
    assert kept("Observation", "p0000-soep-s") and not kept("Observation", "p0000-soep-o")  # not tagged to share
    assert not in_summary(
        {
            "resourceType": "Observation",
            "code": {"coding": [{"system": "x", "code": "y"}]},
            "effectiveDateTime": TODAY.isoformat(),
        },
        TODAY,
    )  # not a summary measurement
    assert not in_summary({"resourceType": "Encounter"}, TODAY)


def test_entered_in_error_per_type(practice: Practice) -> None:
    condition = entered_in_error(to_hub(source(practice, "Condition", "p0000-cond"), ctx(practice.version)))
    assert condition["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in condition  # R4: no clinical status on an entered-in-error condition
    assert entered_in_error(to_hub(source(practice, "Flag", "p0000-alert"), ctx(practice.version)))["status"] == (
        "entered-in-error"
    )


def test_a_record_without_an_id_is_refused() -> None:
    with pytest.raises(MappingError, match="without an id"):
        to_hub({"resourceType": "Condition"}, ctx("stu3"))


def test_invalid_source_records_are_refused_with_their_id_and_element() -> None:
    from adapters.huisarts.source import check_source

    with pytest.raises(MappingError, match=r"Condition/x: invalid at clinicalStatus"):
        check_source(
            {
                "resourceType": "Condition",
                "id": "x",
                "clinicalStatus": {"coding": []},
                "subject": {"reference": "Patient/1"},
            },
            "stu3",
        )
    with pytest.raises(MappingError, match="not a FHIR STU3 resource type"):
        check_source({"resourceType": "Nonsense", "id": "y"}, "stu3")
    check_source(
        {"resourceType": "Condition", "id": "x", "clinicalStatus": "active", "subject": {"reference": "Patient/1"}},
        "stu3",
    )


def test_every_fixture_record_is_valid_for_its_version(practice: Practice) -> None:
    from adapters.huisarts.source import check_source

    for by_id in practice.resources.values():
        for record in by_id.values():
            check_source(record, practice.version)
