"""Client mistakes get a 4xx OperationOutcome that says what is wrong and where; never a 500."""

from __future__ import annotations

import httpx
import pytest

JSON = {"Content-Type": "application/fhir+json"}


def _issue(r: httpx.Response) -> dict:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    issue = body["issue"][0]
    assert issue["severity"] in ("error", "fatal") and issue["code"] and issue["diagnostics"]
    return issue


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", content=b'{"resourceType": "Patient", ', headers=JSON)
    assert r.status_code == 400
    assert "Malformed JSON" in _issue(r)["diagnostics"]


async def test_malformed_xml(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/fhir/Patient",
        content=b"<Patient xmlns='http://hl7.org/fhir'><id",
        headers={"Content-Type": "application/fhir+xml"},
    )
    assert r.status_code == 400
    _issue(r)


async def test_wrong_resource_type(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", json={"resourceType": "Observation"})
    assert r.status_code == 400
    assert _issue(r)["expression"] == ["resourceType"]
    r = await client.post("/fhir/Patient", json={"name": []})
    assert r.status_code == 400


async def test_id_mismatch(client: httpx.AsyncClient) -> None:
    r = await client.put("/fhir/Patient/a", json={"resourceType": "Patient", "id": "b"})
    assert r.status_code == 400
    assert _issue(r)["expression"] == ["Patient.id"]
    r = await client.put("/fhir/Patient/a", json={"resourceType": "Patient"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        ({"resourceType": "Patient", "foo": 1}, "Patient.foo"),
        ({"resourceType": "Patient", "name": [{"family": 3}]}, "Patient.name[0].family"),
        ({"resourceType": "Patient", "name": {"family": "x"}}, "Patient.name"),
        ({"resourceType": "Patient", "birthDate": "1938-13-45"}, "Patient.birthDate"),
        ({"resourceType": "Patient", "gender": ["female"]}, "Patient.gender"),
        ({"resourceType": "Observation", "code": {"text": "x"}}, "Observation.status"),
    ],
)
async def test_invalid_elements_are_named(client: httpx.AsyncClient, body: dict, expression: str) -> None:
    r = await client.post(f"/fhir/{body['resourceType']}", json=body)
    assert r.status_code in (400, 422), r.text
    expressions = [e for i in r.json()["issue"] for e in i.get("expression", [])]
    assert expression in expressions, r.text


async def test_invalid_id_in_url(client: httpx.AsyncClient) -> None:
    r = await client.put("/fhir/Patient/bad_id!", json={"resourceType": "Patient", "id": "bad_id!"})
    assert r.status_code == 400


async def test_unknown_type_is_404(client: httpx.AsyncClient) -> None:
    for method in ("GET", "POST"):
        r = await client.request(method, "/fhir/NoSuchType", json={"resourceType": "NoSuchType"})
        assert r.status_code == 404
        _issue(r)


async def test_method_not_allowed(client: httpx.AsyncClient) -> None:
    r = await client.delete("/fhir/metadata")
    assert r.status_code == 405 and "allow" in r.headers
    _issue(r)


async def test_oversize_body_is_413(client: httpx.AsyncClient, hub_app: object) -> None:
    limit = hub_app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    big = b'{"resourceType":"Patient","text":{"status":"generated","div":"' + b"x" * (limit + 10) + b'"}}'
    r = await client.post("/fhir/Patient", content=big, headers=JSON)
    assert r.status_code == 413
    _issue(r)


async def test_unsupported_media_type_is_415(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", content=b"name=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    _issue(r)


async def test_empty_body(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", content=b"", headers=JSON)
    assert r.status_code == 400


async def test_bad_search_values_are_400(client: httpx.AsyncClient) -> None:
    for query in ("birthdate=notadate", "_count=-1", "_sort=nonsense", "_total=sometimes", "birthdate.name=x"):
        r = await client.get(f"/fhir/Patient?{query}")
        assert r.status_code == 400, (query, r.text)
        _issue(r)


async def test_garbage_never_gives_500(client: httpx.AsyncClient) -> None:
    samples = [
        (b"[]", "Patient"),
        (b"null", "Patient"),
        (b'"x"', "Patient"),
        (b"123", "Observation"),
        (b'{"resourceType":"Bundle","type":"transaction","entry":"x"}', ""),
        (b'{"resourceType":"Bundle","type":"transaction","entry":[1,2]}', ""),
        (b'{"resourceType":"Patient","contained":[{"resourceType":"Nope"}]}', "Patient"),
        (b'{"resourceType":"Patient","meta":{"versionId":5}}', "Patient"),
        (b'{"resourceType":"Patient","id":{"a":1}}', "Patient"),
        (b"\xff\xfe\x00", "Patient"),
    ]
    for body, path in samples:
        r = await client.post(f"/fhir/{path}", content=body, headers=JSON)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        _issue(r)


async def test_batch_reports_bad_entries_per_entry(client: httpx.AsyncClient) -> None:
    body = b'{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET"}}]}'
    r = await client.post("/fhir", content=body, headers=JSON)
    assert r.status_code == 200
    response = r.json()["entry"][0]["response"]
    assert response["status"].startswith("400")
    assert response["outcome"]["issue"][0]["expression"] == ["Bundle.entry[0].request.url"]


async def test_r4_type_without_a_model_is_a_clear_400(client: httpx.AsyncClient) -> None:
    """R4 types that the R4B models do not carry (e.g. MedicinalProduct) are refused, not crashed on."""
    r = await client.post("/fhir/MedicinalProduct", json={"resourceType": "MedicinalProduct"})
    assert r.status_code == 400
    assert "not supported" in _issue(r)["diagnostics"]
