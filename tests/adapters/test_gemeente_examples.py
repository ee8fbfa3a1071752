"""Every example message of iWmo 3.2 through the adapter into a live hub, asserted field by field."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from adapters.common.client import HubClient
from adapters.common.harness import MISSING, assert_fields
from adapters.gemeente import codes as c
from adapters.gemeente import schemas
from tests.adapters.conftest import DATA, LiveNetwork
from tests.adapters.helpers import one, processor, retour_codes_at
from tests.adapters.iwmo_builders import Client, Product, wmo301

EXT = "http://hl7.org/fhir/StructureDefinition/"


def example(number: str) -> bytes:
    return (DATA / f"WMO{number}.xml").read_bytes()


async def test_wmo301_example_lands_field_by_field(live_network: LiveNetwork, hub_client: HubClient) -> None:
    proc = processor(live_network, hub_client)
    result = await proc.process(example("301"))
    assert result.status == "accepted", result.reasons
    assert result.retour is not None
    assert not schemas.validate("302", etree.fromstring(result.retour))
    codes = retour_codes_at(result.retour)
    assert codes["Header"] == ["0200"] and codes["ToegewezenProduct"] == ["0200"]
    assert codes["Relatie"] == ["0200", "0200"] and codes["Client"] == ["0200"]

    found = await hub_client.search(
        "ServiceRequest", {"toewijzing-nummer": "101", "_include": "ServiceRequest:subject"}
    )
    sr, patient = one(found, "ServiceRequest"), one(found, "Patient")
    assert_fields(
        sr,
        {
            "identifier[0].system": c.TOEWIJZING_SYSTEM,
            "identifier[0].value": "101",
            "status": "active",
            "intent": "order",
            "category[0].coding[0].code": "wmo-toewijzing",
            "code.coding[0].system": c.PRODUCTCATEGORIE_SYSTEM,
            "code.coding[0].code": "01",
            "code.coding[0].display": "Hulp bij het huishouden",
            f"code.extension[url={c.PRODUCTCODE_EXT}].valueString": "01A01",
            "quantityQuantity.value": 10,
            "quantityQuantity.code": "01",
            "quantityQuantity.unit": "Minuut",
            "quantityQuantity.system": c.EENHEID_SYSTEM,
            f"extension[url={c.FREQUENTIE_EXT}].valueCoding.code": "1",
            "occurrencePeriod.start": "2023-01-01",
            "occurrencePeriod.end": "2023-12-31",
            "authoredOn": "2023-08-13T12:34:56+02:00",
            "requisition.value": "42420001/42420002",
            "note[0].text": "Toegewezen product 1 Commentaar",
            "subject.reference": f"Patient/{patient['id']}",
        },
        "ServiceRequest 101",
    )
    assert_fields(
        patient,
        {
            f"identifier[system={c.BSN_SYSTEM}].value": "999900006",
            "gender": "male",
            "birthDate": "1967-08-13",
            "name[0].family": "de Wit-van Jansen",
            f"name[0]._family.extension[url={EXT}humanname-own-prefix].valueString": "de",
            f"name[0]._family.extension[url={EXT}humanname-own-name].valueString": "Wit",
            f"name[0]._family.extension[url={EXT}humanname-partner-prefix].valueString": "van",
            f"name[0]._family.extension[url={EXT}humanname-partner-name].valueString": "Jansen",
            f"name[0].extension[url={EXT}humanname-assembly-order].valueCode": "NL4",
            "name[0].given": ["Tim", "T."],
            "communication[0].language.text": "Deens",
            f"extension[url={EXT}patient-interpreterRequired].valueBoolean": True,
            "address[0].postalCode": "9999XX",
            "address[0].city": "Plaats",
            "address[0].line": ["Straatweg 100 C BAL"],
            "address[0].country": "AD",
            "telecom[0].value": "1@er.com",
        },
        "Patient",
    )
    performer = await hub_client.read("Organization", sr["performer"][0]["reference"].split("/")[1])
    requester = await hub_client.read(
        "Organization",
        sr["requester"][0]["reference"].split("/")[1]
        if isinstance(sr["requester"], list)
        else sr["requester"]["reference"].split("/")[1],
    )
    assert_fields(performer, {f"identifier[system={c.AGB_SYSTEM}].value": "42420001"}, "provider")
    assert_fields(
        requester,
        {
            f"identifier[system={c.URA_SYSTEM}].value": "00045678",
            f"identifier[system={c.GEMEENTE_SYSTEM}].value": "0384",
        },
        "gemeente",
    )

    plan = await hub_client.read("CarePlan", sr["basedOn"][0]["reference"].split("/")[1])
    assert_fields(
        plan,
        {
            "status": "active",
            "intent": "plan",
            "category[0].coding[0].code": "gedeeld-zorgplan",
            f"identifier[system={c.TOEWIJZING_SYSTEM}].value": "101",
            "activity[0].detail.code.coding[0].code": "huishoudelijke-hulp",
            "activity[0].detail.status": "not-started",
            f"activity[0].detail.extension[url={c.PERFORMER_KIND_EXT}].valueCode": "organisatie",
            "activity[0].detail.performer": sr["performer"],
            "period.start": "2023-01-01",
            "subject.reference": f"Patient/{patient['id']}",
        },
        "CarePlan",
    )
    team = await hub_client.read("CareTeam", plan["careTeam"][0]["reference"].split("/")[1])
    members = {p["member"]["reference"]: p for p in team["participant"]}
    assert f"Patient/{patient['id']}" in members and sr["requester"]["reference"] in members
    assert_fields(
        members[sr["performer"][0]["reference"]],
        {"role[0].text": "Wmo-aanbieder", "period.start": "2023-01-01", "period.end": "2023-12-31"},
    )

    related = await hub_client.search("RelatedPerson", {"patient": f"Patient/{patient['id']}"})
    by_id = {r["identifier"][0]["value"]: r for r in related}
    assert set(by_id) == {"999900006-1", "999900006-2"}
    assert_fields(
        by_id["999900006-1"],
        {
            "relationship[0].coding[0].system": c.ROLE_SYSTEM,
            "relationship[0].coding[0].code": "03",
            "name[0].family": "van Jansen",
            "gender": "unknown",
            "birthDate": "1967-01-13",
            "telecom[0].value": "0101234567",
            "telecom[2].value": "a@b.com",
            "address[0].line": ["straat 10 A BEL"],
            "relationship[1]": MISSING,
        },
        "RelatedPerson 1",
    )


async def test_inbound_examples_305_307_317_319(live_network: LiveNetwork, hub_client: HubClient) -> None:
    """305/307 name toewijzingen 300201/300202, 317 names 10071/10072: a 301 brings those first."""
    proc = processor(live_network, hub_client)
    setup = wmo301(
        "EX305SETUP",
        Client(),
        [
            Product("300201", code="01A11", ingang="2025-04-01", eind="2025-12-31", datum="2025-03-20"),
            Product("300202", code="01A12", ingang="2025-04-01", eind="2025-12-31", datum="2025-03-20"),
            Product("10071", code="01A01", ingang="2023-01-01", eind="2023-12-31", datum="2022-12-20"),
            Product("10072", code="01A02", ingang="2023-01-01", eind="2023-12-31", datum="2022-12-20"),
        ],
        ontvanger="65656055",
    )
    assert (await proc.process(setup)).status == "accepted"

    started = await proc.process(example("305"))
    assert started.status == "accepted", started.reasons
    assert retour_codes_at(started.retour or b"")["StartProduct"] == ["0200", "0200"]
    plans = await hub_client.search("CarePlan", {"identifier": f"{c.TOEWIJZING_SYSTEM}|300201"})
    assert_fields(
        plans[0], {"activity[0].detail.status": "in-progress", "activity[0].detail.scheduledPeriod.start": "2025-04-03"}
    )

    stopped = await proc.process(example("307"))
    assert stopped.status == "accepted", stopped.reasons
    found = await hub_client.search("ServiceRequest", {"toewijzing-nummer": "300202"})
    assert_fields(found[0], {"status": "completed", "occurrencePeriod.end": "2025-07-18"})
    plans = await hub_client.search("CarePlan", {"identifier": f"{c.TOEWIJZING_SYSTEM}|300202"})
    assert_fields(
        plans[0],
        {
            "activity[0].detail.status": "completed",
            "activity[0].detail.scheduledPeriod.start": "2025-04-15",
            "activity[0].detail.scheduledPeriod.end": "2025-07-18",
            "activity[0].detail.statusReason.coding[0].code": "31",
        },
    )

    asked = await proc.process(example("317"))
    assert asked.status == "accepted", asked.reasons
    proposals = await hub_client.search("ServiceRequest", {"requisition": f"{c.VERZOEK_SYSTEM}|65656055/9003"})
    by_key = {p["identifier"][0]["value"]: p for p in proposals}
    original = (await hub_client.search("ServiceRequest", {"toewijzing-nummer": "10072"}))[0]
    assert_fields(
        by_key["65656055/9003/W1"],
        {
            "intent": "proposal",
            "status": "active",
            "replaces[0].reference": f"ServiceRequest/{original['id']}",
            "occurrencePeriod.start": "2023-04-02",
            "occurrencePeriod.end": "2023-12-31",
            "code.coding[0].code": "01",
            "reasonCode[0].coding[0].code": "1",
        },
    )
    assert_fields(
        by_key["65656055/9003/N1"],
        {
            "intent": "proposal",
            f"code.extension[url={c.PRODUCTCODE_EXT}].valueString": "01A12",
            "quantityQuantity.value": 20,
            "quantityQuantity.code": "14",
            f"extension[url={c.FREQUENTIE_EXT}].valueCoding.code": "4",
            "replaces": MISSING,
        },
    )

    answered = await proc.process(example("319"))
    assert answered.status == "accepted", answered.reasons
    assert retour_codes_at(answered.retour or b"")["Antwoord"] == ["0200"]
    proposals = await hub_client.search("ServiceRequest", {"requisition": f"{c.VERZOEK_SYSTEM}|65656055/9003"})
    for p in proposals:
        assert_fields(p, {"status": "revoked", "note[-1].text": "Verzoek afgewezen: Zorginhoudelijke afkeur (7)"})


async def test_inbound_example_315_and_retour_examples(live_network: LiveNetwork, hub_client: HubClient) -> None:
    proc = processor(live_network, hub_client)
    requested = await proc.process(example("315"))
    assert requested.status == "accepted", requested.reasons
    assert not schemas.validate("316", etree.fromstring(requested.retour or b""))
    found = await hub_client.search("ServiceRequest", {"identifier": f"{c.VERZOEK_PRODUCT_SYSTEM}|42420001/42420001"})
    assert_fields(
        found[0],
        {
            "intent": "proposal",
            "occurrencePeriod.start": "2023-06-01",
            "occurrencePeriod.end": "2023-06-30",
            "quantityQuantity.value": 4,
            "quantityQuantity.code": "14",
            f"code.extension[url={c.PRODUCTCODE_EXT}].valueString": "ABCDE",
            "note[0].text": "Commentaar Aangevraagd Product",
        },
    )
    for number in ("302", "306", "308", "316", "318", "320"):
        result = await proc.process(example(number))
        assert result.status == "acknowledged", (number, result.reasons)
        assert result.retour is None
    declaratie = await proc.process(example("323"))
    assert declaratie.status == "not-mapped"


def test_every_example_is_covered() -> None:
    assert sorted(p.stem for p in Path(DATA).glob("WMO*.xml")) == [
        "WMO301",
        "WMO302",
        "WMO305",
        "WMO306",
        "WMO307",
        "WMO308",
        "WMO315",
        "WMO316",
        "WMO317",
        "WMO318",
        "WMO319",
        "WMO320",
        "WMO323",
    ]
