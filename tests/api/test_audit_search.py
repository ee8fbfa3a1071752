"""Who saw my data: AuditEvent search over the log, through real access tokens.

The hub's FHIR router is wired to the audit package by the server code; here a minimal stand-in
route does what it will do (verify the bearer token, turn the principal into a
:class:`~hub.audit.search.Visibility`, call :func:`~hub.audit.search.search_audit`), so that the
PGO case is tested end to end over HTTP with the hub's own token machinery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from starlette.responses import Response

from hub.access.authserver import issue_token
from hub.access.keys import HubKeys
from hub.access.principal import Principal
from hub.access.tokens import AuthConfig, TokenVerifier
from hub.audit.records import AuditRecord
from hub.audit.search import Visibility, read_audit, reject_write, search_audit
from hub.audit.writer import AuditWriter
from hub.fhir.errors import FhirError
from hub.store.db import Database
from tests.api.test_audit_log import UZI, audit_db  # noqa: F401  (fixture)

BSN_ANNA, BSN_BOB = "999911120", "999911131"
#: What the access layer would look up: the Patient ids of a BSN, and a mantelzorger's delegations.
PATIENTS_BY_BSN = {BSN_ANNA: {"anna"}, BSN_BOB: {"bob"}}
AUDIT_DELEGATIONS = {"carer-1": {BSN_ANNA}}


def visibility_for(p: Principal) -> Visibility:
    if p.is_admin:
        return Visibility()
    if p.kind == "client":
        return Visibility(patient_ids=frozenset(PATIENTS_BY_BSN.get(p.patient_bsn or "", set())))
    if p.kind == "related":
        allowed = AUDIT_DELEGATIONS.get(p.person_id or "", set())
        bsn = p.acting_for if p.acting_for in allowed else None
        return Visibility(patient_ids=frozenset(PATIENTS_BY_BSN.get(bsn or "", set())))
    if p.kind == "professional":
        return Visibility(agent_ura=p.organisation_ura or "")
    return Visibility(patient_ids=frozenset())


def stand_in_app(db: Database, verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()

    @app.api_route("/fhir/AuditEvent", methods=["GET", "POST", "PUT", "DELETE"])
    @app.api_route("/fhir/AuditEvent/{res_id}", methods=["GET", "PUT", "PATCH", "DELETE"])
    async def audit(request: Request, res_id: str | None = None) -> Response:
        try:
            principal = await verifier.verify_authorization(request.headers.get("authorization"))
            reject_write(request.method)
            vis = visibility_for(principal)
            async with db.read() as conn:
                if res_id is not None:
                    found = await read_audit(conn, res_id, vis)
                    if found is None:
                        return Response(status_code=404)
                    return Response(found, media_type="application/fhir+json")
                body = await search_audit(conn, parse_qsl(request.url.query), vis, base="http://hub.test/fhir")
            return Response(orjson.dumps(body), media_type="application/fhir+json")
        except FhirError as exc:
            return Response(orjson.dumps(exc.outcome()), status_code=exc.status, headers=exc.headers)

    return app


@pytest_asyncio.fixture(loop_scope="session")
async def world(audit_db: Database, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:  # noqa: F811
    """A log with accesses to Anna's and Bob's data by two organisations, some denied."""
    writer = AuditWriter(audit_db, key_dir=tmp_path / "keys")
    await writer.start()
    org_a = dict(
        principal_kind="professional",
        client_id="ecd-a",
        organisation_ura="00000001",
        practitioner=(UZI, "900000001"),
        method="GET",
    )
    org_b = dict(principal_kind="professional", client_id="ecd-b", organisation_ura="00000002", method="GET")
    seqs: dict[str, int] = {}
    seqs["a_reads_anna"] = await writer.record(
        AuditRecord(
            "read",
            200,
            path="Observation/1",
            resources=(("Observation", "1", "1"),),
            patient_ids=("anna",),
            **org_a,
        )
    )
    seqs["b_denied_anna"] = await writer.record(
        AuditRecord(
            "read",
            403,
            path="Observation/1",
            patient_ids=("anna",),
            denial_reason="no care relationship",
            **org_b,
        )
    )
    seqs["a_searches_both"] = await writer.record(
        AuditRecord("search-type", 200, path="Observation", query="code=1234", patient_ids=("anna", "bob"), **org_a)
    )
    seqs["b_reads_bob"] = await writer.record(
        AuditRecord(
            "read",
            200,
            path="Patient/bob",
            resources=(("Patient", "bob", "1"),),
            patient_ids=("bob",),
            **org_b,
        )
    )
    seqs["a_emergency_anna"] = await writer.record(
        AuditRecord(
            "read",
            200,
            path="Consent/9",
            resources=(("Consent", "9", "2"),),
            patient_ids=("anna",),
            emergency_reason="unconscious at the HAP",
            **org_a,
        )
    )
    seqs["a_token"] = await writer.record(AuditRecord("token", 200, **{**org_a, "method": "POST"}))
    keys = HubKeys.in_memory()
    config = AuthConfig(base_url="http://hub.test")
    verifier = TokenVerifier(config, keys)
    app = stand_in_app(audit_db, verifier)

    def token(**kw: Any) -> dict[str, str]:
        return {"Authorization": "Bearer " + issue_token(keys, config, **kw)}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client:
        yield {"client": client, "seqs": seqs, "token": token}
    await writer.stop()


def ids(bundle: dict[str, Any]) -> list[int]:
    return [int(e["resource"]["id"]) for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


async def test_client_sees_exactly_the_accesses_to_their_data(world: dict[str, Any]) -> None:
    client, seqs = world["client"], world["seqs"]
    anna = world["token"](
        kind="client",
        subject=f"bsn:{BSN_ANNA}",
        patient_bsn=BSN_ANNA,
        scopes={"patient/*.rs"},
        client_id="pgo-app",
    )
    r = await client.get("/fhir/AuditEvent", headers=anna)
    assert r.status_code == 200
    bundle = r.json()
    expected = [
        seqs["a_emergency_anna"],
        seqs["a_searches_both"],
        seqs["b_denied_anna"],
        seqs["a_reads_anna"],
    ]
    assert ids(bundle) == expected and bundle["total"] == 4  # newest first, denied one included
    denied = [e["resource"] for e in bundle["entry"] if e["resource"]["outcome"] == "4"]
    assert denied[0]["outcomeDesc"] == "no care relationship"
    emergency = [e["resource"] for e in bundle["entry"] if "purposeOfEvent" in e["resource"]]
    assert {c["code"] for c in emergency[0]["purposeOfEvent"][0]["coding"]} == {"ETREAT", "BTG"}
    # filters narrow within what is visible, never beyond it
    r = await client.get("/fhir/AuditEvent", params={"patient": "Patient/bob"}, headers=anna)
    assert r.json()["total"] == 1 and ids(r.json()) == [seqs["a_searches_both"]]
    r = await client.get("/fhir/AuditEvent", params={"outcome": "4"}, headers=anna)
    assert ids(r.json()) == [seqs["b_denied_anna"]]
    r = await client.get(f"/fhir/AuditEvent/{seqs['b_reads_bob']}", headers=anna)
    assert r.status_code == 404
    r = await client.get(f"/fhir/AuditEvent/{seqs['a_reads_anna']}", headers=anna)
    assert r.status_code == 200 and r.json()["id"] == str(seqs["a_reads_anna"])


async def test_mantelzorger_sees_only_with_an_audit_delegation(world: dict[str, Any]) -> None:
    client, seqs = world["client"], world["seqs"]
    carer = world["token"](
        kind="related",
        subject="carer-1",
        person_id="carer-1",
        patient_bsn=BSN_ANNA,
        acting_for=BSN_ANNA,
        scopes={"patient/*.rs"},
        client_id="pgo-app",
    )
    assert set(ids((await client.get("/fhir/AuditEvent", headers=carer)).json())) == {
        seqs["a_reads_anna"],
        seqs["b_denied_anna"],
        seqs["a_searches_both"],
        seqs["a_emergency_anna"],
    }
    stranger = world["token"](
        kind="related",
        subject="carer-2",
        person_id="carer-2",
        patient_bsn=BSN_ANNA,
        acting_for=BSN_ANNA,
        scopes={"patient/*.rs"},
        client_id="pgo-app",
    )
    r = await client.get("/fhir/AuditEvent", headers=stranger)
    assert r.json()["total"] == 0 and ids(r.json()) == []


async def test_professional_sees_only_their_own_organisation(world: dict[str, Any]) -> None:
    client, seqs = world["client"], world["seqs"]
    org_b = world["token"](
        kind="professional",
        subject="org:00000002",
        organisation_ura="00000002",
        scopes={"system/*.rs"},
        client_id="ecd-b",
    )
    assert ids((await client.get("/fhir/AuditEvent", headers=org_b)).json()) == [
        seqs["b_reads_bob"],
        seqs["b_denied_anna"],
    ]
    r = await client.get("/fhir/AuditEvent", params={"agent": "00000001"}, headers=org_b)
    assert r.json()["total"] == 0


async def test_admin_sees_all_and_filters(world: dict[str, Any]) -> None:
    client, seqs = world["client"], world["seqs"]
    admin = world["token"](kind="admin", subject="admin", scopes={"hub/admin"}, client_id="admin-console")
    r = await client.get("/fhir/AuditEvent", params={"_sort": "date"}, headers=admin)
    assert ids(r.json()) == sorted(seqs.values())
    r = await client.get("/fhir/AuditEvent", params={"agent": "900000001", "subtype": "read"}, headers=admin)
    assert ids(r.json()) == [seqs["a_emergency_anna"], seqs["a_reads_anna"]]
    r = await client.get("/fhir/AuditEvent", params={"entity": "Observation/1"}, headers=admin)
    assert ids(r.json()) == [seqs["a_reads_anna"]]
    r = await client.get("/fhir/AuditEvent", params={"type": "110114"}, headers=admin)
    assert ids(r.json()) == [seqs["a_token"]]
    r = await client.get("/fhir/AuditEvent", params={"action": "E", "patient": "anna"}, headers=admin)
    assert ids(r.json()) == [seqs["a_searches_both"]]
    r = await client.get("/fhir/AuditEvent", params={"date": "ge2000-01-01", "_count": "2"}, headers=admin)
    page1 = r.json()
    assert page1["total"] == 6 and len(ids(page1)) == 2
    next_url = [link["url"] for link in page1["link"] if link["relation"] == "next"][0]
    r = await client.get(next_url.removeprefix("http://hub.test"), headers=admin)
    assert ids(r.json()) == sorted(seqs.values(), reverse=True)[2:4]
    r = await client.get("/fhir/AuditEvent", params={"date": "lt2000-01-01"}, headers=admin)
    assert r.json()["total"] == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_no_update_or_delete_through_the_api(world: dict[str, Any], method: str) -> None:
    admin = world["token"](kind="admin", subject="admin", scopes={"hub/admin"}, client_id="admin-console")
    seq = world["seqs"]["a_reads_anna"]
    r = await world["client"].request(method, f"/fhir/AuditEvent/{seq}", headers=admin, content=b"{}")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"


async def test_bad_parameters(world: dict[str, Any]) -> None:
    admin = world["token"](kind="admin", subject="admin", scopes={"hub/admin"}, client_id="admin-console")
    r = await world["client"].get("/fhir/AuditEvent", params={"date": "yesterday"}, headers=admin)
    assert r.status_code == 400
    r = await world["client"].get("/fhir/AuditEvent", params={"nonsense": "1"}, headers=admin)
    assert r.status_code == 200 and r.json()["entry"][-1]["search"]["mode"] == "outcome"
