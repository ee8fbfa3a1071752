"""AuditRecord -> BALP-shaped AuditEvent; the search columns agree with the JSON they come from."""

from __future__ import annotations

import orjson
import pytest

from hub.audit.canonical import canonical
from hub.audit.records import (
    INTERACTIONS,
    AuditRecord,
    build_event,
    index_facts,
    outcome_code,
    prepare,
)

UZI = "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers"


def professional_read(**kw: object) -> AuditRecord:
    base: dict[str, object] = dict(
        principal_kind="professional",
        client_id="ecd-1",
        organisation_ura="00012345",
        practitioner=(UZI, "900001111"),
        method="GET",
        path="Observation/7",
        resources=(("Observation", "7", "2"),),
        patient_ids=("p1",),
        purpose_of_use=("TREAT",),
        scopes=("system/*.rs",),
        recorded_us=1_764_000_000_123_456,
    )
    base.update(kw)
    return AuditRecord("read", 200, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (200, "0"),
        (201, "0"),
        (304, "0"),
        (401, "4"),
        (403, "4"),
        (404, "4"),
        (500, "8"),
        (503, "8"),
        (0, "12"),
    ],
)
def test_outcome_codes(status: int, code: str) -> None:
    assert outcome_code(status) == code


def test_professional_read_shape() -> None:
    ev = build_event(professional_read())
    assert ev["resourceType"] == "AuditEvent"
    assert ev["type"]["code"] == "rest"
    assert ev["subtype"][0] == {"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}
    assert ev["action"] == "R" and ev["outcome"] == "0"
    assert ev["recorded"] == "2025-11-24T16:00:00.123456Z"
    assert ev["meta"]["profile"][0].endswith("IHE.BasicAudit.Read")
    requestors = [a for a in ev["agent"] if a["requestor"]]
    assert len(requestors) == 1 and requestors[0]["who"]["identifier"] == {
        "system": UZI,
        "value": "900001111",
    }
    org = [a for a in ev["agent"] if a["type"]["coding"][0]["code"] == "PROV"]
    assert org[0]["who"]["identifier"]["value"] == "00012345"
    refs = [e["what"]["reference"] for e in ev["entity"] if "what" in e]
    assert refs == ["Patient/p1", "Observation/7/_history/2"]
    assert ev["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert "id" not in ev and "extension" not in ev  # the export adds them; the hash must not cover them


def test_search_records_query_and_denial() -> None:
    rec = AuditRecord(
        "search-type",
        403,
        principal_kind="professional",
        client_id="c",
        organisation_ura="1",
        method="GET",
        path="Observation",
        query="patient=Patient/p1&code=1234",
        patient_ids=("p1",),
        denial_reason="no care relationship",
    )
    ev = build_event(rec)
    assert ev["action"] == "E" and ev["outcome"] == "4" and ev["outcomeDesc"] == "no care relationship"
    query = [e for e in ev["entity"] if e["role"]["code"] == "24"][0]
    import base64

    assert base64.b64decode(query["query"]).decode() == "patient=Patient/p1&code=1234"
    assert query["description"] == "GET Observation"


def test_emergency_access_is_flagged() -> None:
    ev = build_event(professional_read(emergency_reason="patient unconscious at HAP"))
    codes = [c["code"] for c in ev["purposeOfEvent"][0]["coding"]]
    assert codes == ["TREAT", "ETREAT", "BTG"]
    assert ev["purposeOfEvent"][0]["text"] == "patient unconscious at HAP"


def test_mantelzorger_acting_for() -> None:
    rec = AuditRecord(
        "read",
        200,
        principal_kind="related",
        client_id="pgo",
        person_id="person-9",
        patient_bsn="999911120",
        acting_for="999911120",
        relation="100001",
        patient_ids=("p1",),
    )
    ev = build_event(rec)
    user = [a for a in ev["agent"] if a["requestor"]][0]
    assert user["who"]["identifier"]["value"] == "person-9"
    assert user["role"][0]["coding"][0]["code"] == "relation-100001"
    acted = [a for a in ev["agent"] if a["type"]["coding"][0]["code"] == "RESP"][0]
    assert acted["who"]["identifier"]["value"] == "999911120"


@pytest.mark.parametrize("interaction", sorted(INTERACTIONS))
def test_index_facts_equal_what_verification_derives(interaction: str) -> None:
    for rec in (
        professional_read(),
        AuditRecord(
            "read",
            403,
            principal_kind="client",
            client_id="pgo",
            patient_bsn="999911120",
            patient_ids=("p1", "p1", "p2"),
            resources=(("Patient", "p1", None), ("Patient", "p1", "3")),
        ),
        AuditRecord("token", 200, client_id="ecd"),
        AuditRecord("capabilities", 200),
    ):
        rec.interaction = interaction
        prepared = prepare(rec)
        event = orjson.loads(prepared.event)
        assert prepared.event == canonical(event)  # the writer's bytes are canonical
        assert index_facts(event, rec.recorded_us) == prepared.facts


def test_unknown_interaction_refused() -> None:
    with pytest.raises(ValueError):
        build_event(AuditRecord("frobnicate", 200))


def test_from_principal_copies_plain_values() -> None:
    from hub.access.principal import Principal

    p = Principal(
        kind="professional",
        subject="org:1",
        scopes=frozenset({"system/*.rs", "a"}),
        client_id="c",
        organisation_ura="00012345",
        practitioner=(UZI, "9"),
    )
    rec = AuditRecord.from_principal(p, "read", 200, patient_ids=("x",))
    assert (rec.principal_kind, rec.client_id, rec.organisation_ura, rec.practitioner) == (
        "professional",
        "c",
        "00012345",
        (UZI, "9"),
    )
    assert rec.scopes == ("a", "system/*.rs") and rec.patient_ids == ("x",)
    anon = AuditRecord.from_principal(None, "read", 401)
    assert anon.principal_kind is None and build_event(anon)["agent"][0]["requestor"] is True
