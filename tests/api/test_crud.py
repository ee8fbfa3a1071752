"""create / read / vread / update / delete, versions and headers, on both databases."""

from __future__ import annotations

import httpx

FHIR_JSON = "application/fhir+json"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
#: A local record number: unlike a BSN, several Patients may carry the same one.
MRN = "urn:zorgnet-test:mrn"


def patient(bsn: str = "999993653", family: str = "Smit", system: str = BSN, **extra: object) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": bsn}],
        "name": [{"family": family, "given": ["Johanna"]}],
        **extra,
    }


async def create(client: httpx.AsyncClient, resource: dict, **headers: str) -> httpx.Response:
    r = await client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=headers)
    assert r.status_code == 201, r.text
    return r


async def test_create_assigns_id_and_version_headers(client: httpx.AsyncClient) -> None:
    r = await create(client, patient())
    body = r.json()
    assert body["id"] and body["meta"]["versionId"] == "1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
    assert "last-modified" in r.headers
    assert r.headers["content-type"].startswith(FHIR_JSON)


async def test_create_ignores_client_id(client: httpx.AsyncClient) -> None:
    r = await create(client, {**patient(), "id": "chosen-by-client"})
    assert r.json()["id"] != "chosen-by-client"


async def test_read_vread_and_update(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient())).json()["id"]
    r = await client.get(f"/fhir/Patient/{pid}")
    assert r.status_code == 200 and r.json()["name"][0]["family"] == "Smit"
    updated = {**r.json(), "name": [{"family": "Jansen"}]}
    r = await client.put(f"/fhir/Patient/{pid}", json=updated)
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "2" and r.headers["etag"] == 'W/"2"'
    v1 = await client.get(f"/fhir/Patient/{pid}/_history/1")
    assert v1.status_code == 200 and v1.json()["name"][0]["family"] == "Smit"
    v2 = await client.get(f"/fhir/Patient/{pid}/_history/2")
    assert v2.json()["name"][0]["family"] == "Jansen"
    assert (await client.get(f"/fhir/Patient/{pid}/_history/3")).status_code == 404


async def test_update_as_create_with_client_id(client: httpx.AsyncClient) -> None:
    r = await client.put("/fhir/Patient/client-chosen-1", json={**patient(), "id": "client-chosen-1"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "client-chosen-1" and r.headers["etag"] == 'W/"1"'
    r = await client.put("/fhir/Patient/client-chosen-1", json={**patient(family="X"), "id": "client-chosen-1"})
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'


async def test_delete_then_gone_and_history_keeps_it(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient())).json()["id"]
    r = await client.delete(f"/fhir/Patient/{pid}")
    assert r.status_code == 200 and r.json()["resourceType"] == "OperationOutcome"
    r = await client.get(f"/fhir/Patient/{pid}")
    assert r.status_code == 410 and r.json()["resourceType"] == "OperationOutcome"
    hist = (await client.get(f"/fhir/Patient/{pid}/_history")).json()
    assert hist["type"] == "history"
    assert [e["request"]["method"] for e in hist["entry"]] == ["DELETE", "POST"]
    assert "resource" not in hist["entry"][0]
    # deleting again is harmless; reading the deleted version is 410
    assert (await client.delete(f"/fhir/Patient/{pid}")).status_code == 200
    assert (await client.get(f"/fhir/Patient/{pid}/_history/2")).status_code == 410
    # and an update brings it back as a new version
    r = await client.put(f"/fhir/Patient/{pid}", json={**patient(), "id": pid})
    assert r.status_code == 201 and r.json()["meta"]["versionId"] == "3"


async def test_unknown_ids_and_types(client: httpx.AsyncClient) -> None:
    r = await client.get("/fhir/Patient/does-not-exist")
    assert r.status_code == 404 and r.json()["issue"][0]["code"] == "not-found"
    r = await client.get("/fhir/Foo/1")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    # An id never used answers as one the caller may not see (no existence oracle).
    assert (await client.delete("/fhir/Patient/never-was")).status_code == 404


async def test_if_match(client: httpx.AsyncClient) -> None:
    body = (await create(client, patient())).json()
    pid = body["id"]
    r = await client.put(f"/fhir/Patient/{pid}", json=body, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200
    r = await client.put(f"/fhir/Patient/{pid}", json=body, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 412 and r.json()["resourceType"] == "OperationOutcome"
    assert (await client.get(f"/fhir/Patient/{pid}")).json()["meta"]["versionId"] == "2"
    r = await client.put(f"/fhir/Patient/{pid}", json=body, headers={"If-Match": "garbage"})
    assert r.status_code == 400
    r = await client.delete(f"/fhir/Patient/{pid}", headers={"If-Match": 'W/"1"'})
    assert r.status_code == 412


async def test_conditional_read(client: httpx.AsyncClient) -> None:
    r = await create(client, patient())
    pid = r.json()["id"]
    r = await client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 304 and r.content == b""
    r = await client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"7"'})
    assert r.status_code == 200


async def test_prefer_return(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", json=patient("1", system=MRN), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"" and r.headers["location"]
    r = await client.post("/fhir/Patient", json=patient("2", system=MRN), headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 201 and r.json()["resourceType"] == "OperationOutcome"
    r = await client.post("/fhir/Patient", json=patient("3", system=MRN), headers={"Prefer": "return=representation"})
    assert r.json()["resourceType"] == "Patient"


async def test_conditional_create(client: httpx.AsyncClient) -> None:
    headers = {"If-None-Exist": f"identifier={MRN}|42"}
    r1 = await client.post("/fhir/Patient", json=patient("42", system=MRN), headers=headers)
    assert r1.status_code == 201
    r2 = await client.post("/fhir/Patient", json=patient("42", system=MRN), headers=headers)
    assert r2.status_code == 200
    assert r2.headers["location"] == r1.headers["location"]
    await create(client, patient("42", system=MRN))  # a second one with the same number, unconditionally
    r3 = await client.post("/fhir/Patient", json=patient("42", system=MRN), headers=headers)
    assert r3.status_code == 412
    # A BSN is one client: a second Patient with it is refused, conditionally or not.
    await create(client, patient())
    r4 = await client.post("/fhir/Patient", json=patient())
    assert r4.status_code == 409 and r4.json()["issue"][0]["code"] == "duplicate"


async def test_conditional_update(client: httpx.AsyncClient) -> None:
    url = f"/fhir/Patient?identifier={BSN}|999990019"
    r = await client.put(url, json=patient("999990019"))
    assert r.status_code == 201
    pid = r.json()["id"]
    r = await client.put(url, json=patient("999990019", family="Mulder"))
    assert r.status_code == 200 and r.json()["id"] == pid and r.json()["meta"]["versionId"] == "2"
    assert (await client.post("/fhir/Patient", json=patient("999990019"))).status_code == 409  # one per BSN
    url = f"/fhir/Patient?identifier={MRN}|7"
    await create(client, patient("7", system=MRN))
    await create(client, patient("7", system=MRN))
    r = await client.put(url, json=patient("7", system=MRN))
    assert r.status_code == 412
    r = await client.put("/fhir/Patient?_id=" + pid, json={**patient("999990019"), "id": "other"})
    assert r.status_code == 400


async def test_conditional_delete(client: httpx.AsyncClient) -> None:
    r = await client.delete(f"/fhir/Patient?identifier={BSN}|999991772")
    assert r.status_code == 200  # nothing matched: nothing to do
    pid = (await create(client, patient("999991772"))).json()["id"]
    r = await client.delete(f"/fhir/Patient?identifier={BSN}|999991772")
    assert r.status_code == 200
    assert (await client.get(f"/fhir/Patient/{pid}")).status_code == 410
    await create(client, patient("999991772", system=MRN))
    await create(client, patient("999991772", system=MRN))
    assert (await client.delete(f"/fhir/Patient?identifier={MRN}|999991772")).status_code == 412
    assert (await client.delete("/fhir/Patient")).status_code == 400


async def test_conditional_by_last_updated_and_id(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient())).json()["id"]
    r = await client.put(f"/fhir/Patient?_id={pid}", json=patient(family="Z"))
    assert r.status_code == 200 and r.json()["id"] == pid
    r = await client.delete("/fhir/Patient?_lastUpdated=gt2000-01-01")
    assert r.status_code == 200
    assert (await client.get(f"/fhir/Patient/{pid}")).status_code == 410
