"""SearchParameters from the store (as in HAPI): one created, changed or deleted through the API takes
effect for new data at once and for existing data after ``$reindex``; a definition the hub cannot
use is refused; access applies to searches by a custom parameter as to any other; another hub
process on the same database takes the change in when it looks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

COLOUR_URL = "http://example.org/fhir/StructureDefinition/favourite-colour"
SEASON_URL = "http://example.org/fhir/StructureDefinition/favourite-season"
#: Another organisation than the one the tests' client acts for (tests.conftest.DEFAULT_AS).
STRANGER = "org:00077777:practitioner:900007777"


def colour_parameter(extension: str = COLOUR_URL, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "SearchParameter",
        "url": "http://example.org/fhir/SearchParameter/patient-favourite",
        "name": "PatientFavourite",
        "status": status,
        "description": "A Patient's favourite, from an extension",
        "code": "favourite",
        "base": ["Patient"],
        "type": "token",
        "expression": f"Patient.extension.where(url='{extension}').value",
    }


def patient(colour: str, extension: str = COLOUR_URL) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": f"Kleur {colour}"}],
        "extension": [{"url": extension, "valueCode": colour}],
    }


async def ids(c: httpx.AsyncClient, query: str, **headers: str) -> set[str]:
    r = await c.get(f"/fhir/{query}", headers=headers)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"}


async def create(c: httpx.AsyncClient, resource: dict[str, Any]) -> str:
    r = await c.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


STRICT = {"Prefer": "handling=strict"}


@pytest.fixture
def admin(client_as: Any) -> httpx.AsyncClient:
    """SearchParameters take effect hub-wide: administrators write them."""
    return client_as("admin")  # type: ignore[no-any-return]


NO_PARAMETERS = {"resourceType": "Parameters"}


def searchable(capability: dict[str, Any], res_type: str) -> set[str]:
    entry = next(e for e in capability["rest"][0]["resource"] if e["type"] == res_type)
    return {p["name"] for p in entry["searchParam"]}


async def test_a_posted_search_parameter_takes_effect(
    client: httpx.AsyncClient, client_as: Any, admin: httpx.AsyncClient
) -> None:
    assert "favourite" not in searchable((await client.get("/fhir/metadata")).json(), "Patient")
    before = await create(client, patient("blue"))
    # not known yet: strict handling refuses the parameter
    r = await client.get("/fhir/Patient?favourite=blue", headers=STRICT)
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"

    sp = await create(admin, colour_parameter())
    after = await create(client, patient("blue"))
    await create(client, patient("red"))
    # new data is indexed by it at once; data stored before it after $reindex
    assert await ids(client, "Patient?favourite=blue", **STRICT) == {after}
    admin = client_as("admin")
    r = await admin.post("/fhir/$reindex", json=NO_PARAMETERS)
    assert r.status_code == 200, r.text
    assert r.json()["parameter"][0]["valueInteger"] >= 4
    assert await ids(client, "Patient?favourite=blue", **STRICT) == {before, after}
    # the CapabilityStatement lists it
    assert "favourite" in searchable((await client.get("/fhir/metadata")).json(), "Patient")

    # a change of the definition: new data is indexed by the new expression
    changed = {**colour_parameter(SEASON_URL), "id": sp}
    r = await admin.put(f"/fhir/SearchParameter/{sp}", json=changed)
    assert r.status_code == 200, r.text
    autumn = await create(client, patient("autumn", SEASON_URL))
    assert await ids(client, "Patient?favourite=autumn", **STRICT) == {autumn}
    r = await admin.post("/fhir/Patient/$reindex", json=NO_PARAMETERS)
    assert r.status_code == 200, r.text
    assert await ids(client, "Patient?favourite=blue", **STRICT) == set()  # reindexed by the new expression

    # retired: no longer in effect
    r = await admin.put(f"/fhir/SearchParameter/{sp}", json={**changed, "status": "retired"})
    assert r.status_code == 200, r.text
    assert (await client.get("/fhir/Patient?favourite=autumn", headers=STRICT)).status_code == 400
    # active again, then deleted: gone again
    r = await admin.put(f"/fhir/SearchParameter/{sp}", json=changed)
    assert await ids(client, "Patient?favourite=autumn", **STRICT) == {autumn}
    assert (await admin.delete(f"/fhir/SearchParameter/{sp}")).status_code == 200
    assert (await client.get("/fhir/Patient?favourite=autumn", headers=STRICT)).status_code == 400
    assert "favourite" not in searchable((await client.get("/fhir/metadata")).json(), "Patient")


async def test_a_search_parameter_on_observation(client: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    await create(
        admin,
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/fhir/SearchParameter/observation-note",
            "name": "ObservationNote",
            "status": "active",
            "code": "note-text",
            "base": ["Observation"],
            "type": "string",
            "expression": "Observation.note.text",
            "description": "The text of a note",
        },
    )
    pid = await create(client, {"resourceType": "Patient", "name": [{"family": "Noot"}]})
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": f"Patient/{pid}"},
    }
    noted = await create(client, {**obs, "note": [{"text": "Gewogen na de lunch"}]})
    await create(client, {**obs, "note": [{"text": "Nuchter gewogen"}]})
    assert await ids(client, "Observation?note-text=gewogen%20na", **STRICT) == {noted}
    assert await ids(client, "Observation?note-text:contains=lunch", **STRICT) == {noted}


async def test_a_bad_search_parameter_is_refused(client: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    bad = [
        {**colour_parameter(), "base": ["Patiënt"]},  # unknown base
        {**colour_parameter(), "expression": "Patient.extension.where(url='x'"},  # does not parse
        {**colour_parameter(), "expression": "Patient.extension.frobnicate()"},  # no such function
        {**colour_parameter(), "type": "colour"},  # no such type
        {**colour_parameter(), "code": "_id"},  # answered by the search layer itself
        {**colour_parameter(), "target": ["Nothing"], "type": "reference"},
        {**colour_parameter(), "code": "identifier"},  # Patient has it from the package
        {
            **colour_parameter(),
            "url": "http://hl7.org/fhir/SearchParameter/Patient-identifier",
            "code": "identifier",
            "expression": "Patient.identifier",
            "status": "retired",
        },  # the package's own
    ]
    for definition in bad:
        r = await admin.post("/fhir/SearchParameter", json=definition)
        assert r.status_code in (400, 422), (definition, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
        assert r.json()["issue"][0]["expression"][0].startswith("SearchParameter."), r.text
    # nothing was stored, and nothing took effect
    assert await ids(client, "SearchParameter?url=http://example.org/fhir/SearchParameter/patient-favourite") == set()
    assert (await client.get("/fhir/Patient?favourite=blue", headers=STRICT)).status_code == 400
    # an update to a bad definition is refused too, and the good one stays in effect
    sp = await create(admin, colour_parameter())
    r = await admin.put(f"/fhir/SearchParameter/{sp}", json={**colour_parameter(), "id": sp, "base": ["Nope"]})
    assert r.status_code in (400, 422), r.text
    mine = await create(client, patient("green"))
    assert await ids(client, "Patient?favourite=green", **STRICT) == {mine}


async def test_access_applies_to_a_custom_parameter(
    client: httpx.AsyncClient, client_as: Any, admin: httpx.AsyncClient
) -> None:
    await create(admin, colour_parameter())
    mine = await create(client, patient("blue"))
    stranger = client_as(STRANGER)
    theirs = await create(stranger, patient("blue"))
    assert await ids(client, "Patient?favourite=blue", **STRICT) == {mine}
    assert await ids(stranger, "Patient?favourite=blue", **STRICT) == {theirs}
    r = await client.get("/fhir/Patient?favourite=blue&_summary=count")
    assert r.json()["total"] == 1


async def test_reindex_is_for_administrators(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/$reindex", json=NO_PARAMETERS)
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"


async def test_another_process_takes_the_change_in(
    client: httpx.AsyncClient, hub_app: Any, admin: httpx.AsyncClient
) -> None:
    """A second hub process on the same database (its own services and registry) sees a
    SearchParameter the first wrote when it looks (its poll), and indexes new data by it."""
    from hub.app import build_services
    from hub.fhir.errors import BadRequest

    settings = hub_app.state.settings
    db = hub_app.state.services.repo.db
    other = build_services(settings, db)
    live = other.repo.search_params
    assert live is not None
    await live.refresh(db)
    try:
        other.search.parse("Patient", [("favourite", "blue")], strict=True)
        raise AssertionError("the parameter is not defined yet")
    except BadRequest:
        pass
    await create(admin, colour_parameter())
    await live.refresh(db)  # what its poller does every refresh_ms
    query = other.search.parse("Patient", [("favourite", "blue")], strict=True)
    assert query.criteria[0].name == "favourite"
    rows = other.repo.indexer(patient("blue") | {"id": "p"})
    assert any(row["param"] == "favourite" and row["code"] == "blue" for row in rows.rows["token"])


async def test_only_administrators_write_search_parameters(client: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    """A SearchParameter changes what every search of every organisation finds: a professional's
    attempt is refused (403) and changes nothing; an administrator's takes effect. (A parameter of
    its own: the other tests' stay in the shared database.)"""
    hobby = {
        **colour_parameter("http://example.org/fhir/StructureDefinition/hobby"),
        "url": "http://example.org/fhir/SearchParameter/patient-hobby",
        "name": "PatientHobby",
        "code": "hobby",
    }
    r = await client.post("/fhir/SearchParameter", json=hobby)
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome", r.text
    assert "administrators" in r.json()["issue"][0]["diagnostics"]
    assert (await client.get("/fhir/Patient?hobby=chess", headers=STRICT)).status_code == 400
    sp = await create(admin, hobby)
    r = await client.put(f"/fhir/SearchParameter/{sp}", json={**hobby, "status": "retired", "id": sp})
    assert r.status_code == 403, r.text
    assert (await client.delete(f"/fhir/SearchParameter/{sp}")).status_code == 403
    mine = await create(client, patient("chess", "http://example.org/fhir/StructureDefinition/hobby"))
    assert await ids(client, "Patient?hobby=chess", **STRICT) == {mine}
