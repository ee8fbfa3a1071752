"""Two real FHIR client libraries from PyPI against a live ``hub serve``: fhirclient and fhirpy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.live import LiveHub, live_hub

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"


AS = "org:00088888:practitioner:900008888"


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    with live_hub(database_url, tmp_path_factory.mktemp("live")) as hub:
        yield hub


def test_fhirclient_crud_and_search(live: LiveHub) -> None:
    from fhirclient import client
    from fhirclient.models.humanname import HumanName
    from fhirclient.models.identifier import Identifier
    from fhirclient.models.patient import Patient

    smart = client.FHIRClient(settings={"app_id": "zorgnet-test", "api_base": live.base})
    server = smart.server
    server.session.headers["Authorization"] = f"Bearer {live.token(AS)}"
    p = Patient()
    ident = Identifier()
    ident.system, ident.value = BSN, "999998286"
    p.identifier = [ident]
    name = HumanName()
    name.family, name.given = "Klaassen", ["Greet"]
    p.name = [name]
    created = p.create(server)
    assert created["resourceType"] == "Patient"
    pid = created["id"]

    read = Patient.read(pid, server)
    assert read.name[0].family == "Klaassen" and read.meta.versionId == "1"
    read.name[0].family = "Klaasen"
    updated = read.update(server)
    assert updated["meta"]["versionId"] == "2"

    found = list(Patient.where(struct={"identifier": f"{BSN}|999998286"}).perform_resources_iter(server))
    assert [r.id for r in found] == [pid]
    assert found[0].name[0].family == "Klaasen"

    Patient.read(pid, server).delete()
    with pytest.raises(Exception) as excinfo:
        Patient.read(pid, server)
    assert "410" in str(excinfo.value)


def test_fhirpy_crud_and_search(live: LiveHub) -> None:
    from fhirpy import SyncFHIRClient

    fhir = SyncFHIRClient(live.base, authorization=f"Bearer {live.token(AS)}")
    patient = fhir.resource(
        "Patient",
        identifier=[{"system": BSN, "value": "999994670"}],
        name=[{"family": "de Groot", "given": ["Kees"]}],
        birthDate="1944-05-06",
    )
    patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"

    obs = fhir.resource(
        "Observation",
        status="final",
        code={"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        subject=patient.to_reference(),
        valueQuantity={"value": 81, "unit": "kg"},
    )
    obs.save()

    fetched = fhir.reference("Patient", patient.id).to_resource()
    assert fetched["name"][0]["family"] == "de Groot"
    fetched["name"][0]["family"] = "de Grote"
    fetched.save()
    assert fhir.reference("Patient", patient.id).to_resource()["meta"]["versionId"] == "2"

    results = fhir.resources("Patient").search(identifier=f"{BSN}|999994670").fetch()
    assert [r.id for r in results] == [patient.id]
    assert fhir.resources("Patient").search(birthdate__ge="1944-01-01", family="de Grote").count() == 1
    observations = fhir.resources("Observation").search(subject=f"Patient/{patient.id}").fetch_all()
    assert len(observations) == 1 and observations[0]["valueQuantity"]["value"] == 81

    obs.delete()
    assert fhir.resources("Observation").search(subject=f"Patient/{patient.id}").count() == 0


def test_no_token_is_401(live: LiveHub) -> None:
    import httpx

    r = httpx.get(f"{live.base}/Patient")
    assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{live.base}/metadata").status_code == 200
