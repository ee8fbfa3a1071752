"""Tests for hub.fhir.extract: index rows per table, composites, compartments."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from hub.fhir.compartment import patient_compartment_types
from hub.fhir.extract import COLUMNS, IndexRows, extract, parse_reference
from hub.fhir.normalize import date_range
from hub.fhir.searchparams import load_registry
from hub.store.tables import DATE_MAX, INDEX_TABLES
from tests.datafiles import NICTIZ_EXAMPLES

EXAMPLES = NICTIZ_EXAMPLES

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {
        "profile": ["http://nictiz.nl/fhir/StructureDefinition/nl-core-Patient"],
        "tag": [{"system": "urn:t", "code": "x"}],
    },
    "identifier": [
        {
            "system": "http://fhir.nl/fhir/NamingSystem/bsn",
            "value": "999911120",
            "type": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}],
                "text": "BSN",
            },
        },
        {
            "system": "http://fhir.nl/fhir/NamingSystem/bsn",
            "value": "999911120",
            "type": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}],
                "text": "BSN",
            },
        },
    ],
    "name": [
        {
            "use": "official",
            "text": "Jan Pieter Pietersen",
            "family": "Pietersen",
            "given": ["Jan", "Piëter"],
            "_given": [None, {"extension": []}],
            "prefix": ["Mr."],
        }
    ],
    "telecom": [
        {"system": "phone", "value": "+31611234567", "use": "work"},
        {"system": "email", "value": "giesput@myweb.nl"},
    ],
    "gender": "female",
    "birthDate": "1998-12-03",
    "deceasedBoolean": False,
    "address": [
        {
            "line": ["1e Jacob van Campenstr 15"],
            "city": "Hoogmade",
            "postalCode": "1012 NX",
            "country": "Nederland",
        }
    ],
    "generalPractitioner": [
        {"reference": "Practitioner/gp1"},
        {"reference": "https://other.example/fhir/Organization/org1/_history/3"},
    ],
    "link": [{"other": {"reference": "Patient/p0"}, "type": "seealso"}],
}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                    "display": "Vital Signs",
                }
            ],
            "text": "Vitaal",
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "Bloeddruk"},
    "subject": {"reference": "Patient/p1"},
    "performer": [
        {"reference": "#pract"},
        {"identifier": {"system": "urn:oid:2.16.528.1.1007.3.1", "value": "123"}},
    ],
    "contained": [{"resourceType": "Practitioner", "id": "pract"}],
    "effectiveDateTime": "2021-03-04T10:15:00+01:00",
    "component": [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {
                "value": Decimal("120"),
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {
                "value": 80,
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
        {"code": {"coding": [{"system": "http://loinc.org", "code": "9999-9"}]}},  # no value: no composite row
    ],
}


def rows(result: IndexRows, table: str, param: str) -> list[dict[str, Any]]:
    return [r for r in result[table] if r["param"] == param]


def test_columns_match_the_tables() -> None:
    assert set(COLUMNS) == set(INDEX_TABLES)
    for name, table in INDEX_TABLES.items():
        # pid, res_type and the client key are the store's, added when the rows are written
        assert COLUMNS[name] == tuple(c.name for c in table.columns if c.name not in ("pid", "res_type", "client_key"))


def test_patient_rows() -> None:
    result = extract(PATIENT, load_registry())
    for table, table_rows in result.rows.items():
        for row in table_rows:
            assert tuple(row) == COLUMNS[table]
    assert [r["value_exact"] for r in rows(result, "string", "given")] == ["Jan", "Piëter"]
    assert {r["value_norm"] for r in rows(result, "string", "name") if r["grp"] == 0} == {
        "jan pieter pietersen",
        "pietersen",
        "jan",
        "pieter",
        "mr.",
    }
    assert {r["value_norm"] for r in rows(result, "string", "address")} == {
        "1e jacob van campenstr 15",
        "hoogmade",
        "1012 nx",
        "nederland",
    }
    assert rows(result, "string", "address-postalcode")[0]["value_exact"] == "1012 NX"
    assert rows(result, "token", "identifier") == [
        {
            "param": "identifier",
            "grp": 0,
            "system": "http://fhir.nl/fhir/NamingSystem/bsn",
            "code": "999911120",
            "text_norm": "bsn",
            "type_system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "type_code": "NI",
        }
    ]  # deduplicated
    assert [(r["system"], r["code"]) for r in rows(result, "token", "phone")] == [(None, "+31611234567")]
    assert len(rows(result, "token", "telecom")) == 2
    assert [r["code"] for r in rows(result, "token", "gender")] == ["female"]
    assert [r["code"] for r in rows(result, "token", "deceased")] == ["false"]
    assert [(r["system"], r["code"]) for r in rows(result, "token", "_tag")] == [("urn:t", "x")]
    assert rows(result, "uri", "_profile")[0]["value"] == PATIENT["meta"]["profile"][0]
    (birth,) = rows(result, "date", "birthdate")
    assert (birth["low"], birth["high"]) == date_range("1998-12-03")
    gps = {
        (r["target_type"], r["target_id"], r["target_url"]) for r in rows(result, "reference", "general-practitioner")
    }
    assert gps == {
        ("Practitioner", "gp1", None),
        ("Organization", "org1", "https://other.example/fhir/Organization/org1/_history/3"),
    }
    assert result.compartments == [("Patient", "p1"), ("Patient", "p0")]
    # plain rows have grp 0; the extra name-part rows grp -1 (a part, never a whole value)
    assert all(r["grp"] == 0 or (r["param"] == "name" and r["grp"] == -1) for t in result.rows.values() for r in t)


def test_token_text_of_codeable_concepts() -> None:
    result = extract(OBSERVATION, load_registry())
    category = rows(result, "token", "category")
    assert [(r["code"], r["text_norm"]) for r in category] == [
        ("vital-signs", "vital signs"),
        (None, "vitaal"),
    ]
    code = rows(result, "token", "code")
    assert [(r["system"], r["code"], r["text_norm"]) for r in code] == [("http://loinc.org", "85354-9", "bloeddruk")]


def test_observation_references_and_dates() -> None:
    result = extract(OBSERVATION, load_registry())
    assert rows(result, "reference", "patient")[0]["target_id"] == "p1"
    performers = rows(result, "reference", "performer")
    assert {(r["target_type"], r["target_id"], r["target_url"], r["ident_value"]) for r in performers} == {
        ("Practitioner", None, "#pract", None),
        (None, None, None, "123"),
    }
    (date,) = rows(result, "date", "date")
    assert (date["low"], date["high"]) == date_range("2021-03-04T09:15:00Z")
    assert result.compartments == [("Patient", "p1")]


def test_composites_share_a_group_per_occurrence() -> None:
    result = extract(OBSERVATION, load_registry())
    codes = rows(result, "token", "component-code-value-quantity$0")
    values = rows(result, "quantity", "component-code-value-quantity$1")
    assert len(codes) == len(values) == 2
    pairs = {(c["code"], v["value"]) for c in codes for v in values if c["grp"] == v["grp"]}
    assert pairs == {("8480-6", 120.0), ("8462-4", 80.0)}
    assert all(r["grp"] >= 1 for r in codes + values)
    assert len({r["grp"] for r in codes}) == 2
    all_grps = [r["grp"] for t in result.rows.values() for r in t if "$" in r["param"]]
    assert all_grps and min(all_grps) >= 1
    assert rows(result, "token", "code-value-quantity$0") == []  # the Observation itself has no value
    values = rows(result, "quantity", "component-value-quantity")
    assert {(v["value"], v["system"], v["code"], v["unit"]) for v in values} == {
        (120.0, "http://unitsofmeasure.org", "mm[Hg]", "mmHg"),
        (80.0, "http://unitsofmeasure.org", "mm[Hg]", "mmHg"),
    }


def test_quantity_variants_and_numbers() -> None:
    registry = load_registry()
    claim = {
        "resourceType": "ChargeItem",
        "id": "c",
        "status": "billable",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/p"},
        "priceOverride": {"value": 12.5, "currency": "EUR"},
        "factorOverride": 0.5,
        "quantity": {"value": 2},
    }
    result = extract(claim, registry)
    assert [(r["value"], r["system"], r["code"]) for r in rows(result, "quantity", "price-override")] == [
        (12.5, "urn:iso:std:iso:4217", "EUR")
    ]
    assert [r["value"] for r in rows(result, "number", "factor-override")] == [0.5]
    assert [r["value"] for r in rows(result, "quantity", "quantity")] == [2.0]
    condition = {
        "resourceType": "Condition",
        "id": "c",
        "subject": {"reference": "Patient/p"},
        "onsetAge": {"value": 52, "unit": "jaar", "system": "http://unitsofmeasure.org", "code": "a"},
        "abatementRange": {"low": {"value": 60, "code": "a"}, "high": {"value": 61, "code": "a"}},
    }
    result = extract(condition, registry)
    assert [r["value"] for r in rows(result, "quantity", "onset-age")] == [52.0]
    assert [r["value"] for r in rows(result, "quantity", "abatement-age")] == [60.0, 61.0]
    assert rows(result, "date", "onset-date") == []


def test_periods_timings_and_malformed_dates() -> None:
    careplan = {
        "resourceType": "CarePlan",
        "id": "cp",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2024-01-01"},
        "created": "not a date",
        "activity": [
            {
                "detail": {
                    "status": "in-progress",
                    "scheduledTiming": {"repeat": {"boundsPeriod": {"start": "2024-01-01", "end": "2024-03-01"}}},
                }
            },
            {"detail": {"status": "scheduled", "scheduledString": "elke ochtend"}},
            {"detail": {"status": "scheduled", "scheduledPeriod": {"start": "2024-05"}}},
        ],
    }
    result = extract(careplan, load_registry())
    (period,) = rows(result, "date", "date")
    assert (period["low"], period["high"]) == (date_range("2024-01-01")[0], DATE_MAX)
    assert rows(result, "date", "_lastUpdated") == []
    assert {(r["low"], r["high"]) for r in rows(result, "date", "activity-date")} == {
        (date_range("2024-01-01")[0], date_range("2024-03-01")[1]),
        (date_range("2024-05")[0], DATE_MAX),
    }
    assert result.compartments == [("Patient", "p1")]


def test_references_of_every_shape() -> None:
    registry = load_registry()
    doc = {
        "resourceType": "DocumentReference",
        "id": "d",
        "status": "current",
        "subject": {"reference": "Patient/p1/_history/4"},
        "author": [
            {"reference": "urn:uuid:5f1a"},
            {"display": "only text"},
            {
                "identifier": {"system": "urn:oid:2.16.840.1.113883.2.4.6.1", "value": "0123"},
                "type": "Practitioner",
            },
        ],
        "relatesTo": [{"code": "replaces", "target": {"reference": "DocumentReference/old"}}],
        "content": [{"attachment": {"url": "http://x/y.pdf"}, "format": {"code": "urn:ihe:pcc"}}],
        "context": {"related": [{"reference": "http://hub.example/fhir/Encounter/e1"}]},
    }
    result = extract(doc, registry, base_url="http://hub.example/fhir")
    assert [(r["target_type"], r["target_id"], r["target_url"]) for r in rows(result, "reference", "subject")] == [
        ("Patient", "p1", None)
    ]
    authors = rows(result, "reference", "author")
    assert {(r["target_type"], r["target_url"], r["ident_system"], r["ident_value"]) for r in authors} == {
        (None, "urn:uuid:5f1a", None, None),
        ("Practitioner", None, "urn:oid:2.16.840.1.113883.2.4.6.1", "0123"),
    }
    related = rows(result, "reference", "related")
    assert [(r["target_type"], r["target_id"]) for r in related] == [("Encounter", "e1")]
    assert rows(result, "uri", "location")[0]["value"] == "http://x/y.pdf"
    rel = [r for r in result["reference"] if r["param"].startswith("relationship$")]
    tok = [r for r in result["token"] if r["param"].startswith("relationship$")]
    assert [r["target_id"] for r in rel] == ["old"] and [r["code"] for r in tok] == ["replaces"]
    assert rel[0]["grp"] == tok[0]["grp"] >= 1
    assert result.compartments == [("Patient", "p1")]


def test_canonical_references_keep_the_url() -> None:
    questionnaire_response = {
        "resourceType": "QuestionnaireResponse",
        "id": "qr",
        "status": "completed",
        "questionnaire": "http://example.org/fhir/Questionnaire/pzp|1.0",
        "subject": {"reference": "Patient/p2"},
    }
    result = extract(questionnaire_response, load_registry())
    (q,) = rows(result, "reference", "questionnaire")
    assert (q["target_type"], q["target_id"], q["target_url"]) == (
        "Questionnaire",
        "pzp",
        "http://example.org/fhir/Questionnaire/pzp|1.0",
    )
    assert result.compartments == [("Patient", "p2")]


def test_long_values_are_cut_for_string_columns() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p",
        "identifier": [{"system": "urn:x", "value": "9" * 400}],
        "name": [{"family": "A" * 400}],
    }
    result = extract(patient, load_registry())
    assert len(rows(result, "token", "identifier")[0]["code"]) == 255
    (family,) = rows(result, "string", "family")
    assert len(family["value_norm"]) == 255 and len(family["value_exact"]) == 400


def test_every_nl_core_example_extracts() -> None:
    registry = load_registry()
    total = checked = 0
    for path in sorted(EXAMPLES.glob("*.xml")):
        raw = path.read_bytes()
        rtype = etree.QName(etree.fromstring(raw)).localname
        try:
            model = get_fhir_model_class(rtype).model_validate_xml(raw)
        except ValueError:
            continue
        resource = orjson.loads(model.model_dump_json(exclude_none=True))
        result = extract(resource, registry)
        total += result.count()
        if rtype == "Device":
            assert result.compartments == []  # Device is not in the R4 Patient compartment
        for table, table_rows in result.rows.items():
            assert len({tuple(r.values()) for r in table_rows}) == len(table_rows)
            for row in table_rows:
                assert tuple(row) == COLUMNS[table]
                assert isinstance(row["param"], str) and isinstance(row["grp"], int)
        subject = resource.get("subject") or resource.get("patient") or {}
        in_compartment = rtype in patient_compartment_types()
        if in_compartment and str(subject.get("reference", "")).startswith("Patient/"):
            assert ("Patient", subject["reference"].split("/")[1]) in result.compartments, path.name
            checked += 1
    assert total > 1000 and checked > 50


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "value",
                    "system",
                    "code",
                    "start",
                    "end",
                    "reference",
                    "coding",
                    "text",
                    "display",
                    "family",
                    "given",
                    "low",
                    "high",
                    "event",
                    "repeat",
                    "identifier",
                    "type",
                    "currency",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_fields = st.sampled_from(
    [
        "name",
        "identifier",
        "telecom",
        "birthDate",
        "address",
        "gender",
        "link",
        "generalPractitioner",
        "deceasedBoolean",
        "deceasedDateTime",
        "subject",
        "code",
        "valueQuantity",
        "effectivePeriod",
        "effectiveTiming",
        "component",
        "meta",
        "performer",
        "valueRange",
        "category",
        "contained",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    rtype=st.sampled_from(["Patient", "Observation", "CarePlan"]),
    body=st.dictionaries(_fields, _json, max_size=6),
)
def test_never_raises_on_odd_data(rtype: str, body: dict[str, Any]) -> None:
    result = extract({"resourceType": rtype, "id": "x", **body}, load_registry())
    for table, table_rows in result.rows.items():
        for row in table_rows:
            assert tuple(row) == COLUMNS[table]


def test_without_resource_type_nothing_is_indexed() -> None:
    assert extract({"id": "x"}, load_registry()).count() == 0


def test_parse_reference() -> None:
    assert parse_reference("Patient/1") == ("Patient", "1", None)
    assert parse_reference("Patient/1/_history/2") == ("Patient", "1", None)
    assert parse_reference("http://h/fhir/Patient/1") == ("Patient", "1", "http://h/fhir/Patient/1")
    assert parse_reference("urn:uuid:0b1c") == (None, None, "urn:uuid:0b1c")
    assert parse_reference("http://snomed.info/sct") == (None, None, "http://snomed.info/sct")
    assert parse_reference("#c1", {"contained": [{"resourceType": "Medication", "id": "c1"}]}) == (
        "Medication",
        None,
        "#c1",
    )
