"""Request limits and malformed input: each is a 4xx OperationOutcome naming the limit, never a 500.

The limits come from :class:`hub.settings.Settings` (defaults used here); the DoS suite
(test_dos.py) checks that hitting them is also fast and does not stall other requests.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import orjson
import pytest

from hub.settings import Settings

JSON = {"Content-Type": "application/fhir+json"}
PATCH = {"Content-Type": "application/json-patch+json"}
DEFAULTS = Settings()


def _outcome(r: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    issue = body["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"], body
    return dict(issue)


async def _patient(client: httpx.AsyncClient) -> str:
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Jansen"}]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# -- strict integers --------------------------------------------------------------------------------

BIG = str(2**64)


@pytest.mark.parametrize(
    "query",
    [
        "_count=\u00b9",
        "_count=\uff11\uff12",
        "_count=-1",
        f"_count={BIG}",
        f"_offset={BIG}",
        "_offset=\u00b2",
        f"_snapshot={BIG}",
        "_snapshot=\u00b9",
        f"_offset={2**40}",
    ],
)
async def test_search_integers_are_ascii_and_bounded(client: httpx.AsyncClient, query: str) -> None:
    r = await client.get(f"/fhir/Patient?{query}")
    issue = _outcome(r, 400)
    assert issue["expression"][0] in query


@pytest.mark.parametrize("query", ["_count=\u00b9", f"_cursor={BIG}", "_cursor=\u00b3", "_cursor=\uff15"])
async def test_history_integers(client: httpx.AsyncClient, query: str) -> None:
    r = await client.get(f"/fhir/Patient/_history?{query}")
    _outcome(r, 400)


@pytest.mark.parametrize("version", ["\u00b9", "\uff11", BIG, "1" * 40])
async def test_vread_version_ids(client: httpx.AsyncClient, version: str) -> None:
    pid = await _patient(client)
    r = await client.get(f"/fhir/Patient/{pid}/_history/{version}")
    _outcome(r, 404)


async def test_big_etag_is_400(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    r = await client.put(
        f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid}, headers={"If-Match": f'W/"{BIG}"'}
    )
    _outcome(r, 400)
    r = await client.put(
        f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid}, headers={"If-Match": 'W/"\u00b9"'.encode()}
    )
    _outcome(r, 400)


async def test_everything_and_audit_paging_integers(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    for query in (f"_offset={BIG}", "_snapshot=\u00b9"):
        r = await client.get(f"/fhir/Patient/{pid}/$everything?{query}")
        _outcome(r, 400)
        r = await client.get(f"/fhir/AuditEvent?{query}")
        _outcome(r, (400, 403))
    r = await client.get(f"/fhir/AuditEvent/{BIG}")
    _outcome(r, (403, 404))


# -- body shape -------------------------------------------------------------------------------------


def _nested_extensions(levels: int) -> dict[str, Any]:
    ext: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for i in range(levels):
        ext = {"url": f"http://example.org/level{i}", "extension": [ext]}
    return {"resourceType": "Patient", "extension": [ext]}


async def test_deeply_nested_extensions_are_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", content=json.dumps(_nested_extensions(150)), headers=JSON)
    issue = _outcome(r, 400)
    assert issue["code"] == "too-costly" and str(DEFAULTS.max_json_depth) in issue["diagnostics"]
    assert issue["expression"][0].startswith("Patient.extension[0].extension[0]")


async def test_nesting_within_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", content=orjson.dumps(_nested_extensions(20)), headers=JSON)
    assert r.status_code == 201, r.text


async def test_deep_json_with_decimals_is_refused(client: httpx.AsyncClient) -> None:
    # Exact decimals take the simplejson path, which parses recursively.
    body = b'{"resourceType":"Patient","x":' + b"[" * 5000 + b"1.50" + b"]" * 5000 + b"}"
    _outcome(await client.post("/fhir/Patient", content=body, headers=JSON), 400)
    body = b'{"resourceType":"Patient","x":' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}"
    _outcome(await client.post("/fhir/Patient", content=body, headers=JSON), 400)


async def test_long_array_is_refused(client: httpx.AsyncClient) -> None:
    n = DEFAULTS.max_array_length + 1
    body = {"resourceType": "Patient", "identifier": [{"value": str(i)} for i in range(n)]}
    issue = _outcome(await client.post("/fhir/Patient", content=orjson.dumps(body), headers=JSON), 400)
    assert issue["expression"] == ["Patient.identifier"] and str(n) in issue["diagnostics"]


def _xml_nested(levels: int) -> bytes:
    inner = b'<valueString value="x"/>'
    for i in range(levels):
        inner = b'<extension url="http://example.org/l%d">' % i + inner + b"</extension>"
    return b'<Patient xmlns="http://hl7.org/fhir">' + inner + b"</Patient>"


async def test_deep_xml_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", content=_xml_nested(150), headers={"Content-Type": "application/fhir+xml"})
    issue = _outcome(r, 400)
    assert "limit" in issue["diagnostics"]
    r = await client.post("/fhir/Patient", content=_xml_nested(10), headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 201, r.text


async def test_wide_xml_is_refused(client: httpx.AsyncClient) -> None:
    ids = b"".join(b'<identifier><value value="%d"/></identifier>' % i for i in range(DEFAULTS.max_array_length + 1))
    r = await client.post(
        "/fhir/Patient",
        content=b'<Patient xmlns="http://hl7.org/fhir">' + ids + b"</Patient>",
        headers={"Content-Type": "application/fhir+xml"},
    )
    _outcome(r, 400)


# -- NUL characters ---------------------------------------------------------------------------------


async def test_nul_in_json_string(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/fhir/Patient", content=b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}', headers=JSON
    )
    issue = _outcome(r, 400)
    assert issue["expression"] == ["Patient.name[0].family"]
    r = await client.post("/fhir/Patient", content=b'{"resourceType":"Patient","\\u0000":1}', headers=JSON)
    _outcome(r, 400)


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Patient?name=a%00b",
        "/fhir/Patient?_id=%00",
        "/fhir/Patient/abc%00",
        "/fhir/Patient/a%00/_history/1",
        "/fhir/Patient?na%00me=x",
        "/fhir/Observation?subject=Patient/%00",
        "/fhir/Patient?_has:Observation:subject:code=%00",
    ],
)
async def test_nul_in_url(client: httpx.AsyncClient, url: str) -> None:
    _outcome(await client.get(url), 400)


async def test_nul_in_put_id_and_conditions(client: httpx.AsyncClient) -> None:
    r = await client.put("/fhir/Patient/a%00b", json={"resourceType": "Patient", "id": "a\u0000b"})
    _outcome(r, 400)
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers={"If-None-Exist": "name=a%00"})
    _outcome(r, 400)


async def test_nul_in_search_form_body(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/fhir/Patient/_search", content=b"name=a%00b", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    _outcome(r, 400)


# -- Bundle entries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ifNoneExist", "ifMatch", "ifNoneMatch", "ifModifiedSince"])
@pytest.mark.parametrize("value", [1, ["name=x"], {"a": 1}, True])
async def test_non_string_conditions_in_bundle(client: httpx.AsyncClient, key: str, value: Any) -> None:
    for kind in ("transaction", "batch"):
        entry = {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient", key: value}}
        r = await client.post("/fhir", json={"resourceType": "Bundle", "type": kind, "entry": [entry]})
        if kind == "transaction":
            issue = _outcome(r, 400)
            assert issue["expression"] == [f"Bundle.entry[0].request.{key}"]
        else:
            assert r.status_code == 200, r.text
            assert r.json()["entry"][0]["response"]["status"].startswith("400")


async def test_binary_patch_in_bundle_with_bad_data(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    for data in (17, "%%%notbase64", base64.b64encode(b"[" * 300 + b"]" * 300).decode()):
        entry = {
            "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
            "request": {"method": "PATCH", "url": f"Patient/{pid}"},
        }
        r = await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]})
        _outcome(r, 400)


# -- search limits ----------------------------------------------------------------------------------


async def test_too_many_search_parameters(client: httpx.AsyncClient) -> None:
    n = DEFAULTS.max_search_params + 1
    query = "&".join(f"name=n{i}" for i in range(n))
    issue = _outcome(await client.get(f"/fhir/Patient?{query}"), 400)
    assert issue["code"] == "too-costly" and str(n) in issue["diagnostics"]
    ok = "&".join(f"name=n{i}" for i in range(DEFAULTS.max_search_params))
    assert (await client.get(f"/fhir/Patient?{ok}")).status_code == 200


async def test_two_hundred_chained_parameters(client: httpx.AsyncClient) -> None:
    query = "&".join(f"subject:Patient.organization.name=x{i}" for i in range(200))
    issue = _outcome(await client.get(f"/fhir/Observation?{query}"), 400)
    assert issue["code"] == "too-costly"


async def test_chain_depth(client: httpx.AsyncClient) -> None:
    hops = "subject:Patient.organization" + ".partof" * DEFAULTS.max_chain_depth + ".name"
    issue = _outcome(await client.get(f"/fhir/Observation?{hops}=x"), 400)
    assert issue["code"] == "too-costly" and "chain" in issue["diagnostics"]
    allowed = "subject:Patient.organization" + ".partof" * (DEFAULTS.max_chain_depth - 2) + ".name"
    r = await client.get(f"/fhir/Observation?{allowed}=x")
    assert r.status_code == 200, r.text


async def test_has_fifty_levels_deep(client: httpx.AsyncClient) -> None:
    name = "_has:Observation:subject:" * 50 + "code"
    issue = _outcome(await client.get(f"/fhir/Patient?{name}=x"), 400)
    assert issue["code"] == "too-costly" and "_has" in issue["diagnostics"]
    allowed = "_has:Observation:subject:" * DEFAULTS.max_has_depth + "code"
    r = await client.get(f"/fhir/Patient?{allowed}=x")
    assert r.status_code in (200, 400), r.text  # nested _has on a Patient is parsed (its meaning is the engine's)
    assert r.status_code != 400 or "limit" not in r.text


@pytest.mark.parametrize(
    "param", ["_id", "name", "identifier", "birthdate", "general-practitioner", "_has:Observation:subject:code"]
)
async def test_two_thousand_values(client: httpx.AsyncClient, param: str) -> None:
    values = ",".join(f"v{i}" if param != "birthdate" else f"19{i % 90 + 10}" for i in range(2000))
    issue = _outcome(await client.get(f"/fhir/Patient?{param}={values}"), 400)
    assert issue["code"] == "too-costly" and "2000" in issue["diagnostics"]


async def test_values_at_the_limit_run_on_every_backend(client: httpx.AsyncClient) -> None:
    """The most a search may ask for, at each limit, is answered (not a database error)."""
    n = DEFAULTS.max_values_per_param
    for name in ("_id", "identifier", "name", "birthdate", "general-practitioner"):
        values = ",".join(
            f"19{i % 90 + 10}" if name == "birthdate" else f"s|v{i}" if name == "identifier" else f"v{i}"
            for i in range(n)
        )
        r = await client.get("/fhir/Patient", params={name: values})
        assert r.status_code == 200, (name, r.text[:500])
    nested = ",".join(f"Practitioner/x{i}" for i in range(DEFAULTS.max_search_terms // 3))
    r = await client.get("/fhir/Patient", params={"_has:Observation:subject:_has:Provenance:target:agent": nested})
    assert r.status_code == 200, r.text[:500]
    chained = ",".join(f"o{i}" for i in range(DEFAULTS.max_search_terms // 3))
    r = await client.get("/fhir/Patient", params={"general-practitioner:Practitioner.organization.name": chained})
    assert r.status_code == 200, r.text[:500]
    many = [("name:contains", f"x{i}") for i in range(DEFAULTS.max_search_params)]
    assert (await client.get("/fhir/Patient", params=many)).status_code == 200


async def test_weighted_terms_limit(client: httpx.AsyncClient) -> None:
    per = DEFAULTS.max_values_per_param
    params = [("_has:Observation:subject:code", ",".join(f"c{i}" for i in range(per)))] * 2
    issue = _outcome(await client.get("/fhir/Patient", params=params), 400)
    assert issue["code"] == "too-costly" and "terms" in issue["diagnostics"]


# -- patch limits -----------------------------------------------------------------------------------


async def test_json_patch_bomb_is_refused(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    ops = [{"op": "copy", "from": "/name", "path": "/name/-"} for _ in range(30)]
    r = await client.patch(f"/fhir/Patient/{pid}", content=orjson.dumps(ops), headers=PATCH)
    issue = _outcome(r, 413)
    assert issue["code"] == "too-costly" and "limit" in issue["diagnostics"]
    after = (await client.get(f"/fhir/Patient/{pid}")).json()
    assert after["meta"]["versionId"] == "1" and len(after["name"]) == 1  # nothing half written


async def test_json_patch_growth_by_values(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    big = "x" * (DEFAULTS.max_resource_bytes // 4)
    ops = [{"op": "add", "path": "/name/-", "value": {"family": big}} for _ in range(5)]
    _outcome(await client.patch(f"/fhir/Patient/{pid}", content=orjson.dumps(ops), headers=PATCH), 413)


async def test_too_many_patch_operations(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    ops = [{"op": "test", "path": "/id", "value": pid}] * (DEFAULTS.max_patch_operations + 1)
    issue = _outcome(await client.patch(f"/fhir/Patient/{pid}", content=orjson.dumps(ops), headers=PATCH), 400)
    assert issue["code"] == "too-costly"


async def test_fhirpath_patch_growth_is_refused(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    big = "y" * (DEFAULTS.max_resource_bytes // 3)
    op = {
        "name": "operation",
        "part": [
            {"name": "type", "valueCode": "add"},
            {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "name"},
            {"name": "value", "valueHumanName": {"family": big}},
        ],
    }
    body = {"resourceType": "Parameters", "parameter": [op] * 3}
    r = await client.patch(f"/fhir/Patient/{pid}", content=orjson.dumps(body), headers=JSON)
    issue = _outcome(r, 413)
    assert "FHIRPath Patch" in issue["diagnostics"]


async def test_ordinary_patch_still_works(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    ops = [
        {"op": "copy", "from": "/name/0", "path": "/name/-"},
        {"op": "replace", "path": "/name/1/family", "value": "B"},
    ]
    r = await client.patch(f"/fhir/Patient/{pid}", content=orjson.dumps(ops), headers=PATCH)
    assert r.status_code == 200, r.text
    assert [n["family"] for n in r.json()["name"]] == ["Jansen", "B"]
