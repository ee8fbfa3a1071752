"""Batch and transaction Bundles: atomicity, order, urn:uuid and conditional references."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.access_helpers import bsn_for

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"


def _network_bundle(n_observations: int) -> dict:
    entries = [
        {
            "fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": BSN, "value": "999993653"}],
                "name": [{"family": "Smit"}],
            },
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222",
            "resource": {"resourceType": "Practitioner", "name": [{"family": "de Vries"}]},
            "request": {"method": "POST", "url": "Practitioner"},
        },
    ]
    for i in range(n_observations):
        entries.append(
            {
                "fullUrl": f"urn:uuid:00000000-0000-0000-0000-{i:012d}",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                    "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"},
                    "performer": [{"reference": "urn:uuid:22222222-2222-2222-2222-222222222222"}],
                    "valueQuantity": {
                        "value": 70 + i / 10,
                        "unit": "kg",
                        "system": "http://unitsofmeasure.org",
                        "code": "kg",
                    },
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def _count(client: httpx.AsyncClient, res_type: str) -> int:
    r = await client.get(f"/fhir/{res_type}?_summary=count")
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


async def test_hundred_entries_commit_atomically_with_references_rewritten(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir", json=_network_bundle(98))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "transaction-response" and len(body["entry"]) == 100
    assert all(e["response"]["status"].startswith("201") for e in body["entry"])
    patient_loc = body["entry"][0]["response"]["location"]
    patient_ref = "/".join(patient_loc.split("/")[-4:-2])
    obs = (await client.get(f"/fhir/Observation?subject={patient_ref}&_count=200")).json()
    assert obs["total"] == 98
    assert {e["resource"]["subject"]["reference"] for e in obs["entry"]} == {patient_ref}
    assert all(e["resource"]["performer"][0]["reference"].startswith("Practitioner/") for e in obs["entry"])


async def test_one_bad_entry_leaves_the_database_unchanged(client: httpx.AsyncClient) -> None:
    bundle = _network_bundle(98)
    bundle["entry"][57]["resource"]["valueQuantity"]["value"] = "not a number"
    r = await client.post("/fhir", json=bundle)
    assert r.status_code == 400, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[57]" in outcome["issue"][0]["expression"][0]
    assert await _count(client, "Observation") == 0
    assert await _count(client, "Patient") == 0
    history = (await client.get("/fhir/_history")).json()
    assert "entry" not in history


async def test_failure_late_in_processing_rolls_back(client: httpx.AsyncClient) -> None:
    """A PUT with a stale If-Match fails after the POSTs were already written: all are undone."""
    r = await client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    assert r.status_code == 201
    bundle = _network_bundle(3)
    bundle["entry"].append(
        {
            "resource": {"resourceType": "Patient", "id": "p1", "active": True},
            "request": {"method": "PUT", "url": "Patient/p1", "ifMatch": 'W/"9"'},
        }
    )
    r = await client.post("/fhir", json=bundle)
    assert r.status_code == 412
    assert await _count(client, "Observation") == 0
    assert (await client.get("/fhir/Patient/p1")).json()["meta"]["versionId"] == "1"


async def test_processing_order_and_conditional_references(client: httpx.AsyncClient) -> None:
    await client.put("/fhir/Patient/old", json={"resourceType": "Patient", "id": "old"})
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            # GET listed first but processed last: it sees the new patient
            {"request": {"method": "GET", "url": f"Patient?identifier={BSN}|999990019"}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": "obs-1",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": f"Patient?identifier={BSN}|999990019"},
                },
                "request": {"method": "PUT", "url": "Observation/obs-1"},
            },
            {
                "fullUrl": "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001",
                "resource": {"resourceType": "Patient", "identifier": [{"system": BSN, "value": "999990019"}]},
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={BSN}|999990019"},
            },
            {"request": {"method": "DELETE", "url": "Patient/old"}},
        ],
    }
    r = await client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert entries[0]["resource"]["total"] == 1
    assert entries[1]["response"]["status"].startswith("201")
    assert entries[2]["response"]["status"].startswith("201")
    new_id = entries[2]["response"]["location"].split("/")[-3]
    obs = (await client.get("/fhir/Observation/obs-1")).json()
    assert obs["subject"]["reference"] == f"Patient/{new_id}"
    assert (await client.get("/fhir/Patient/old")).status_code == 410
    # the same bundle again: ifNoneExist now matches (200), nothing new is created
    bundle["entry"] = bundle["entry"][1:3]
    r = await client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    assert r.json()["entry"][1]["response"]["status"].startswith("200")
    assert await _count(client, "Patient") == 1


#: A local record number: unlike a BSN (one Patient per client), several Patients may carry one.
MRN = "urn:zorgnet-test:mrn"


def _conditional_patient(n: int, bsn: str, system: str = BSN) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:cccccccc-0000-0000-0000-{n:012d}",
        "resource": {
            "resourceType": "Patient",
            "identifier": [{"system": system, "value": bsn}],
            "name": [{"family": f"Bundel {n}"}],
        },
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={system}|{bsn}"},
    }


async def test_conditional_creates_by_identifier_are_matched_with_one_search(
    client: httpx.AsyncClient, count_statements: Any
) -> None:
    """Ten conditional creates by BSN in one transaction: the existing one is matched (200), the
    others created (201), and the hub looks them up with one search, not ten."""
    existing = await client.post("/fhir/Patient", json=_conditional_patient(0, bsn_for(300))["resource"])
    assert existing.status_code == 201
    bsns = [bsn_for(n) for n in range(300, 310)]
    entries = [_conditional_patient(n, bsn) for n, bsn in enumerate(bsns)]
    entries.append(
        {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "gewicht"},
                "subject": {"reference": entries[0]["fullUrl"]},
            },
            "request": {"method": "POST", "url": "Observation"},
        }
    )
    with count_statements() as counter:
        r = await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"][:3] for e in r.json()["entry"]]
    assert statuses == ["200", *["201"] * 9, "201"]
    assert r.json()["entry"][0]["response"]["location"].split("/")[-3] == existing.json()["id"]
    lookups = [
        s
        for s in counter.statements  # searches (reads by id name res_id)
        if s.lstrip().startswith("SELECT resource.pid") and "resource.res_id = " not in s
    ]
    assert len(lookups) == 1, lookups
    assert await _count(client, "Patient") == 10
    obs = (await client.get("/fhir/Observation")).json()["entry"][0]["resource"]
    assert obs["subject"]["reference"] == f"Patient/{existing.json()['id']}"
    # the same Bundle again creates nothing
    r = await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries[:-1]})
    assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["200"] * 10
    assert await _count(client, "Patient") == 10


async def test_more_conditional_creates_by_identifier_than_one_search_may_name(
    client: httpx.AsyncClient, count_statements: Any
) -> None:
    """More conditional creates by identifier than one search may list (100 values; a registry
    Bundle of an organisation's practitioners has hundreds): searches of at most 100 each, never a
    400 for the hub's own search, and the same Bundle again matches every entry."""
    entries = [_conditional_patient(n, f"r{n:05d}", MRN) for n in range(230)]
    with count_statements() as counter:
        r = await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status_code == 200, r.text[:500]
    assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["201"] * 230
    lookups = [s for s in counter.statements if s.lstrip().startswith("SELECT resource.pid")]
    assert 3 <= len(lookups) <= 4, len(lookups)  # 100 + 100 + 30 (reads by id aside)
    r = await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status_code == 200, r.text[:500]
    assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["200"] * 230
    assert await _count(client, "Patient") == 230


async def test_conditional_create_matching_two_fails_the_bundle(client: httpx.AsyncClient) -> None:
    for _ in range(2):  # two Patients with one local number (a BSN would be refused the second time)
        assert (await client.post("/fhir/Patient", json=_conditional_patient(0, "320", MRN)["resource"])).is_success
    entries = [_conditional_patient(1, "321", MRN), _conditional_patient(2, "320", MRN)]
    r = await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status_code == 412, r.text
    assert "Bundle.entry[1]" in r.json()["issue"][0]["diagnostics"]
    assert await _count(client, "Patient") == 2


async def test_unresolvable_references_fail(client: httpx.AsyncClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:99999999-9999-9999-9999-999999999999"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        ],
    }
    r = await client.post("/fhir", json=bundle)
    assert r.status_code == 400 and "fullUrl" in r.json()["issue"][0]["diagnostics"]
    bundle["entry"][0]["resource"]["subject"]["reference"] = f"Patient?identifier={BSN}|000000000"
    r = await client.post("/fhir", json=bundle)
    assert r.status_code == 412
    assert await _count(client, "Observation") == 0


async def test_batch_entries_are_independent(client: httpx.AsyncClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": "A"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Patient", "name": "not a list"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {"request": {"method": "GET", "url": "Foo/1"}},
            {
                "resource": {"resourceType": "Patient", "name": [{"family": "B"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    r = await client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"][:3] for e in r.json()["entry"]]
    assert statuses == ["201", "400", "404", "404", "201"]
    assert r.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert await _count(client, "Patient") == 2


async def test_bad_bundles(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir", json={"resourceType": "Bundle", "type": "collection"})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["Bundle.type"]
    r = await client.post("/fhir", json={"resourceType": "Patient"})
    assert r.status_code == 400
    r = await client.post(
        "/fhir",
        json={"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient"}}]},
    )
    assert r.status_code == 400 and "request" in r.json()["issue"][0]["diagnostics"]
    dup = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "d"}, "request": {"method": "PUT", "url": "Patient/d"}},
            {"resource": {"resourceType": "Patient", "id": "d"}, "request": {"method": "PUT", "url": "Patient/d"}},
        ],
    }
    assert (await client.post("/fhir", json=dup)).status_code == 400
