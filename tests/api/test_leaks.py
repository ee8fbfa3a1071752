"""The leaks of an attacker's review, each as the scenario that showed it, over HTTP on both databases.

The network (tests/api/test_access_rules.py): organisations A (huisarts, Z3) and B (thuiszorg, T2)
in the care team of client 1 (``pat-0``), organisation C without a relationship, client 2
(``pat-1``) elsewhere, a mantelzorger (person-0) with a delegation from client 1.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.api.access_helpers import (
    BSN_SYSTEM,
    URA_SYSTEM,
    DelegationSpec,
    NetworkSpec,
    build,
    load,
)
from tests.api.test_access_rules import (
    BSN1,
    BSN2,
    GLASS,
    OBS,
    OTHER_OBS,
    PLAN,
    A,
    B,
    C,
    consent,
    network,
    open_glass,
    put,
    rule,
    status,
)
from tests.conformance import examples
from tests.conftest import clean

OWN_BASE = "http://127.0.0.1:8080/fhir"  # the test hub's own FHIR base (settings.base_url default)
OVERDRACHT = {"coding": [{"system": "http://snomed.info/sct", "code": "308292007"}]}


async def _load(hub_app: Any, spec: NetworkSpec) -> NetworkSpec:
    await clean(hub_app)
    await load(hub_app, build(spec))
    return spec


@pytest.fixture
async def net(hub_app: Any) -> NetworkSpec:
    return await _load(hub_app, network())


def task_for(ref: str, owner: str = "Organization/org-2") -> dict[str, Any]:
    body = examples.overdracht_task()
    body.pop("id")
    body["for"] = {"reference": ref}
    body["owner"] = {"reference": owner}
    body["requester"] = {"reference": owner}
    return body


def care_team(subject: str, *members: str) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": {"reference": subject},
        "participant": [{"member": {"reference": m}} for m in members],
    }


def service_request(subject: str, performer: str) -> dict[str, Any]:
    body = examples.toewijzing()
    body.pop("id")
    body["identifier"][0]["value"] = f"TW-{performer[-1]}-{subject[-1]}"
    body.update(
        subject={"reference": subject},
        performer=[{"reference": performer}],
        occurrencePeriod={"start": "2020-01-01", "end": "2089-12-31"},
    )
    return body


async def sees_client_1(c: httpx.AsyncClient) -> bool:
    """Whether the caller sees client 1's registration, care plan or agenda."""
    for url in ("Patient/pat-0", PLAN, "Appointment/appointment-0-2"):
        if await status(c, url) == 200:
            return True
    return False


async def audit_view(c: httpx.AsyncClient, after: int = 0) -> list[dict[str, Any]]:
    """The caller's own audit view (a client: every access to their data), records after ``after``."""
    r = await c.get("/fhir/AuditEvent?_count=1000")
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", []) if int(e["resource"]["id"]) > after]


async def last_seq(hub_app: Any) -> int:
    from sqlalchemy import func, select

    from hub.audit.tables import audit_log

    async with hub_app.state.services.repo.db.read() as conn:
        return int((await conn.execute(select(func.coalesce(func.max(audit_log.c.seq), 0)))).scalar_one())


def event_text(event: dict[str, Any]) -> str:
    """Everything an AuditEvent says, with the base64 query decoded."""
    import json

    parts = [json.dumps(event)]
    for entity in event.get("entity") or []:
        if entity.get("query"):
            parts.append(base64.b64decode(entity["query"]).decode())
    return "\n".join(parts)


# -- 1. references are canonical before anything trusts them -----------------------------------------

FOREIGN_FORMS = [
    "http://evil.example/fhir/Patient/pat-0",
    "foo/Patient/pat-0",
    "https://127.0.0.1:8080/fhir/Patient/pat-0",  # another scheme: another server
    "http://127.0.0.1:8080/fhir-x/Patient/pat-0",
    "Patient/pat-0/extra",
    "urn:uuid:00000000-0000-0000-0000-000000000001",
]


@pytest.mark.parametrize("ref", FOREIGN_FORMS)
async def test_an_external_reference_makes_no_care_relation(net: NetworkSpec, client_as: Any, ref: str) -> None:
    c = client_as(f"org:{C}")
    assert not await sees_client_1(c)
    for body in (task_for(ref), care_team(ref, "Organization/org-2")):
        r = await c.post(f"/fhir/{body['resourceType']}", json=body)
        assert r.status_code in (201, 400, 422), r.text
    assert not await sees_client_1(c)
    assert await status(c, PLAN) == 404
    # Nor does an unregistered URA that describes itself in an Organization resource.
    rogue = client_as("org:29999999")
    org = {"resourceType": "Organization", "identifier": [{"system": URA_SYSTEM, "value": "29999999"}]}
    org_id = (await rogue.post("/fhir/Organization", json=org)).json()["id"]
    await rogue.post("/fhir/Task", json=task_for(ref, f"Organization/{org_id}"))
    assert not await sees_client_1(rogue)


async def test_a_rogue_write_naming_a_client_is_in_their_view(net: NetworkSpec, hub_app: Any, client_as: Any) -> None:
    c, one = client_as(f"org:{C}"), client_as(f"client:{BSN1}")
    after = await last_seq(hub_app)
    r = await c.post("/fhir/Task", json=task_for("http://evil.example/fhir/Patient/pat-0"))
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]
    events = [e for e in await audit_view(one, after) if task_id in event_text(e)]
    assert len(events) == 1


@pytest.mark.parametrize("ref", ["Patient/pat-0", f"{OWN_BASE}/Patient/pat-0", "Patient/pat-0/_history/1"])
async def test_a_local_reference_in_any_form_is_checked(net: NetworkSpec, client_as: Any, ref: str) -> None:
    """The hub's own base and version-specific forms name the local client: the write check asks
    for a care relationship, and an organisation without one is refused."""
    c = client_as(f"org:{C}")
    r = await c.post("/fhir/Task", json=task_for(ref))
    assert r.status_code == 403, r.text
    r = await c.post("/fhir/CareTeam", json=care_team(ref, "Organization/org-2"))
    assert r.status_code == 403, r.text
    assert not await sees_client_1(c)
    # A, in care, may bring C in with any of these forms.
    a = client_as(f"org:{A}")
    r = await a.post("/fhir/CareTeam", json=care_team(ref, "Organization/org-2"))
    assert r.status_code == 201, r.text
    assert await status(c, PLAN) == 200


async def test_a_transaction_resolves_urn_uuid_and_conditional_references(net: NetworkSpec, client_as: Any) -> None:
    """Inside a transaction, ``urn:uuid:`` and conditional references name local resources and are
    checked as such."""
    c, a = client_as(f"org:{C}"), client_as(f"org:{A}")
    conditional = f"Patient?identifier={quote(BSN_SYSTEM)}|{BSN1}"
    for who, want in ((c, 412), (a, 200)):  # C cannot even find the client; A can
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": care_team(conditional, "Organization/org-2"),
                    "request": {"method": "POST", "url": "CareTeam"},
                },
            ],
        }
        r = await who.post("/fhir", json=bundle)
        assert r.status_code == want, r.text
    assert await status(c, PLAN) == 200
    # A new client and a care team in one Bundle by urn:uuid: registering makes C the registrar.
    urn = "urn:uuid:00000000-0000-0000-0000-0000000000a1"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": urn,
                "resource": {"resourceType": "Patient", "identifier": [{"system": BSN_SYSTEM, "value": "999990135"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"resource": care_team(urn, "Organization/org-1"), "request": {"method": "POST", "url": "CareTeam"}},
        ],
    }
    r = await c.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    b = client_as(f"org:{B}")
    assert (await b.get("/fhir/Patient?identifier=999990135&_summary=count")).json()["total"] == 1


# -- 2. access facts only from writes entitled to make them -------------------------------------------


async def test_a_mantelzorger_cannot_bring_an_organisation_into_care(hub_app: Any, client_as: Any) -> None:
    delegated = ("zorgplan", "wmo", "netwerk")
    spec = network(delegations=(DelegationSpec("active", 0, "100001", False, "none", delegated),))
    await _load(hub_app, spec)
    helper, c = client_as(f"person:person-0:for:{BSN1}"), client_as(f"org:{C}")
    r = await helper.post("/fhir/ServiceRequest", json=service_request("Patient/pat-0", "Organization/org-2"))
    assert r.status_code == 201, r.text  # the write itself is within the delegation ...
    r = await helper.post("/fhir/CareTeam", json=care_team("Patient/pat-0", "Organization/org-2"))
    assert r.status_code == 201, r.text
    assert await status(c, PLAN) == 404  # ... but brings nobody into the client's care
    assert not await sees_client_1(c)


async def test_a_legal_representatives_relation_ends_with_their_right(hub_app: Any, client_as: Any) -> None:
    spec = network(delegations=(DelegationSpec("active", 0, "24", True, "none", ("zorgplan",)),))
    await _load(hub_app, spec)
    rep, me, c = client_as(f"person:person-0:for:{BSN1}"), client_as(f"client:{BSN1}"), client_as(f"org:{C}")
    r = await rep.post("/fhir/CareTeam", json=care_team("Patient/pat-0", "Organization/org-2"))
    assert r.status_code == 201, r.text
    assert await status(c, PLAN) == 200  # the legal representative carries the client's rights
    delegation = (await me.get("/fhir/Consent/deleg-0-0")).json()
    await put(me, {**delegation, "status": "inactive"})  # the client withdraws it
    assert await status(c, PLAN) == 404  # and what the representative arranged ends with it


async def test_a_relation_ends_when_the_granting_organisation_leaves(net: NetworkSpec, client_as: Any) -> None:
    a, c, admin = client_as(f"org:{A}"), client_as(f"org:{C}"), client_as("admin")
    r = await a.post("/fhir/CareTeam", json=care_team("Patient/pat-0", "Organization/org-2"))
    assert r.status_code == 201, r.text
    assert await status(c, PLAN) == 200
    # C, now in care, adds A back in a team of its own: a ring that must not outlive its root.
    r = await c.post("/fhir/CareTeam", json=care_team("Patient/pat-0", "Organization/org-0"))
    assert r.status_code == 201, r.text
    team = (await admin.get("/fhir/CareTeam/ct-0-0")).json()
    assert (await admin.put("/fhir/CareTeam/ct-0-0", json={**team, "status": "inactive"})).status_code == 200
    assert await status(c, PLAN) == 404
    assert await status(client_as(f"org:{B}"), PLAN) == 404


async def test_a_registered_gemeente_assigns_a_provider(net: NetworkSpec, hub_app: Any, client_as: Any) -> None:
    admin, c = client_as("admin"), client_as(f"org:{C}")
    gemeente = client_as("org:00045678")
    r = await gemeente.post("/fhir/ServiceRequest", json=service_request("Patient/pat-0", "Organization/org-2"))
    assert r.status_code == 403, r.text  # not (yet) a registered gemeente
    r = await admin.post(
        "/admin/organisations", json={"ura": "00045678", "name": "Gemeente", "kind": "gemeente", "types": ["G6"]}
    )
    assert r.status_code == 201, r.text
    r = await gemeente.post("/fhir/ServiceRequest", json=service_request("Patient/pat-0", "Organization/org-2"))
    assert r.status_code == 201, r.text
    assert await sees_client_1(c)  # the toewijzing brought C in (its wmo data, by consent defaults)


# -- 5. organisation types from the registry ----------------------------------------------------------


async def test_an_organisation_resource_does_not_make_a_huisarts(net: NetworkSpec, client_as: Any) -> None:
    me, b, admin = client_as(f"client:{BSN1}"), client_as(f"org:{B}"), client_as("admin")
    await put(me, consent("c-1", rule("permit", "medisch", org_type="Z3")))
    assert await status(client_as(f"org:{A}"), OBS) == 200  # A is a registered huisarts
    assert await status(b, OBS) == 404
    claim = {
        "resourceType": "Organization",
        "identifier": [{"system": URA_SYSTEM, "value": B}],
        "type": [{"coding": [{"system": "urn:oid:2.16.840.1.113883.2.4.15.1060", "code": "Z3"}]}],
    }
    assert (await b.post("/fhir/Organization", json=claim)).status_code == 201
    assert await status(b, OBS) == 404  # claiming to be a huisarts changes nothing
    # The administrators' registry decides; changing it takes effect at once.
    assert (await b.get("/admin/organisations")).status_code == 403
    r = await admin.post("/admin/organisations", json={"ura": B, "name": "B", "types": ["Z3"]})
    assert r.status_code == 201, r.text
    assert await status(b, OBS) == 200
    assert B in {o["ura"] for o in (await admin.get("/admin/organisations")).json()}
    assert (await admin.post(f"/admin/organisations/{B}/disable")).status_code == 200
    assert await status(b, OBS) == 404
    assert (await admin.post("/admin/organisations", json={"ura": "１２３４５６７８"})).status_code == 400


# -- 3. history by version ----------------------------------------------------------------------------


async def test_history_is_decided_per_version(net: NetworkSpec, hub_app: Any, client_as: Any) -> None:
    one, two = client_as(f"client:{BSN1}"), client_as(f"client:{BSN2}")
    obs = (await one.get(f"/fhir/{OBS}")).json()
    repo = hub_app.state.services.repo
    moved = {**obs, "subject": {"reference": "Patient/pat-1"}, "note": [{"text": "moved"}]}
    moved.pop("meta")
    await repo.update("Observation", obs["id"], moved)  # moved to client 2 (a correction)
    assert await status(two, f"{OBS}/_history/2") == 200
    assert await status(two, f"{OBS}/_history/1") == 404  # version 1 was about client 1
    assert await status(one, f"{OBS}/_history/1") == 200
    assert await status(one, f"{OBS}/_history/2") == 404
    for who, want in ((two, ["2"]), (one, ["1"])):
        for url in (f"{OBS}/_history", "Observation/_history", "_history"):
            r = await who.get(f"/fhir/{url}?_count=100")
            assert r.status_code == 200, r.text
            versions = [
                e["resource"]["meta"]["versionId"]
                for e in r.json().get("entry", [])
                if e.get("resource", {}).get("id") == obs["id"]
            ]
            assert versions == want, (url, versions)
    # The audit credits the client the version was about.
    events = [e for e in await audit_view(two) if obs["id"] in event_text(e)]
    assert all("_history/1" not in (e.get("entity") or [{}])[0].get("what", {}).get("reference", "") for e in events)


# -- 6. the same answer whether or not it exists -----------------------------------------------------


async def test_no_existence_oracle(net: NetworkSpec, client_as: Any) -> None:
    c = client_as(f"org:{C}")
    hidden, missing = OBS, "Observation/never-was"
    for method in ("GET", "DELETE"):
        answers = [await c.request(method, f"/fhir/{url}") for url in (hidden, missing)]
        assert [a.status_code for a in answers] == [404, 404], method
    for suffix in ("/_history", "/_history/1", "/_history/2", "/_history/99", "/_history/x"):
        answers = [await c.get(f"/fhir/{url}{suffix}") for url in (hidden, missing)]
        assert [a.status_code for a in answers] == [404, 404], suffix
        texts = [a.json()["issue"][0]["diagnostics"].replace(hidden.split("/")[1], "ID") for a in answers]
        assert texts[0] == texts[1].replace("never-was", "ID"), texts
    body = {"resourceType": "Observation", "id": hidden.split("/")[1], "status": "final", "code": {"text": "x"}}
    r = await c.put(f"/fhir/{hidden}", json=body)
    assert r.status_code == 404  # neither created nor revealed
    me = client_as(f"client:{BSN1}")
    assert (await me.get(f"/fhir/{hidden}")).json()["meta"]["versionId"] == "1"


# -- 7. one Patient per BSN ---------------------------------------------------------------------------


async def test_a_second_patient_with_a_hidden_clients_bsn_is_refused(net: NetworkSpec, client_as: Any) -> None:
    c = client_as(f"org:{C}")
    body = {"resourceType": "Patient", "identifier": [{"system": BSN_SYSTEM, "value": BSN1}]}
    for headers in ({}, {"If-None-Exist": f"identifier={BSN_SYSTEM}|{BSN1}"}):
        r = await c.post("/fhir/Patient", json=body, headers=headers)
        assert r.status_code == 409, r.text
        assert "pat-0" not in r.text
    r = await c.put("/fhir/Patient/mine", json={**body, "id": "mine"})
    assert r.status_code == 409
    assert (await client_as(f"client:{BSN1}").get("/fhir/Patient?_summary=count")).json()["total"] == 1


# -- 8. permission before validation; $validate as the write; ASCII digits ---------------------------


async def test_permission_before_validation(net: NetworkSpec, client_as: Any) -> None:
    c = client_as(f"org:{C}")
    invalid = {
        "resourceType": "CarePlan",
        "status": "nonsense",
        "intent": "plan",
        "subject": {"reference": "Patient/pat-0"},
    }
    assert (await c.post("/fhir/CarePlan", json=invalid)).status_code == 403
    assert (await client_as(f"org:{A}").post("/fhir/CarePlan", json=invalid)).status_code in (400, 422)


async def test_validate_modes_run_the_write_check(net: NetworkSpec, client_as: Any) -> None:
    c = client_as(f"org:{C}")
    assert (await open_glass(c)).status_code == 200
    glass = client_as(f"org:{C}", **GLASS)
    assert await status(glass, PLAN) == 200  # it may read, under the glass, but never write
    for mode in ("delete", "update"):
        r = await glass.get(f"/fhir/{PLAN}/$validate?mode={mode}")
        assert r.status_code == 403, (mode, r.text)
    assert (await glass.delete(f"/fhir/{PLAN}")).status_code == 403
    # A stranger learns nothing from $validate either.
    assert (await client_as(f"org:{B}").get(f"/fhir/{OTHER_OBS}/$validate?mode=delete")).status_code == 404
    a = client_as(f"org:{A}")
    r = await a.get(f"/fhir/{PLAN}/$validate?mode=delete")
    assert r.status_code == 200, r.text


async def test_only_ascii_digits_in_national_identifiers(hub_app: Any, net: NetworkSpec, client_as: Any) -> None:
    from hub.access.authserver import token_for
    from hub.access.wiring import auth_config, hub_keys

    config = auth_config(hub_app.state.settings)
    with pytest.raises(ValueError):
        token_for("client:９９９９１１１２０", config)
    claims = {
        "iss": config.issuer,
        "aud": config.audience,
        "iat": 1,
        "exp": 4_000_000_000,
        "jti": "fw",
        "sub": "x",
        "kind": "client",
        "scope": "patient/*.rs",
        "patient_bsn": "９９９９１１１２０",
    }
    token = hub_keys(config).sign(claims)
    r = await client_as(None).get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    body = {"resourceType": "Patient", "identifier": [{"system": BSN_SYSTEM, "value": "９９９９１１１２０"}]}
    r = await client_as(f"org:{A}").post("/fhir/Patient", json=body)
    assert r.status_code == 422 and "identifier" in r.json()["issue"][0]["expression"][0]


# -- 9. break the glass -------------------------------------------------------------------------------


async def test_break_the_glass_is_for_registered_care_providers(net: NetworkSpec, client_as: Any) -> None:
    rogue = client_as("org:29999999")
    assert (await open_glass(rogue)).status_code == 403
    assert (await rogue.get(f"/fhir/{PLAN}", headers=GLASS)).status_code == 403
    admin = client_as("admin")
    await admin.post("/admin/organisations", json={"ura": "00045678", "kind": "gemeente"})
    assert (await open_glass(client_as("org:00045678"))).status_code == 403
    assert (await open_glass(client_as(f"client:{BSN1}"))).status_code == 403
    c = client_as(f"org:{C}")
    bad = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueCode": "nieuwsgierig"}, {"name": "text", "valueString": "even kijken"}],
    }
    assert (await c.post("/fhir/Patient/pat-0/$break-glass", json=bad)).status_code == 400
    assert (await open_glass(c, "no-such-client")).status_code == 404


async def test_break_the_glass_ends_is_seen_by_the_client_and_counted(
    net: NetworkSpec, hub_app: Any, client_as: Any
) -> None:
    services = hub_app.state.services
    metrics = services.extras["metrics"]

    def opened() -> float:
        return metrics.break_glass.labels("opened", "niet-aanspreekbaar")._value.get()

    before = opened()
    c, me = client_as(f"org:{C}"), client_as(f"client:{BSN1}")
    after = await last_seq(hub_app)
    settings = services.settings
    settings.extra_settings["break_glass_minutes"] = "0"  # a grant that has ended at once
    try:
        assert (await open_glass(c)).status_code == 200
    finally:
        settings.extra_settings.pop("break_glass_minutes")
    assert await status(c, PLAN, **GLASS) == 404
    r = await open_glass(c)
    assert r.status_code == 200
    ends = {p["name"]: p for p in r.json()["parameter"]}["end"]["valueInstant"]
    assert ends > {p["name"]: p for p in r.json()["parameter"]}["start"]["valueInstant"]
    assert await status(c, PLAN, **GLASS) == 200
    assert opened() == before + 2
    scraped = (await c.get("/metrics")).text
    assert 'hub_break_glass_total{outcome="opened",reason="niet-aanspreekbaar"}' in scraped
    events = [e for e in await audit_view(me, after) if "$break-glass" in event_text(e)]
    assert len(events) == 2
    assert all(any(c_["code"] == "BTG" for p in e["purposeOfEvent"] for c_ in p["coding"]) for e in events)


# -- 4. the audit view per client ---------------------------------------------------------------------


async def test_one_search_over_two_clients_is_logged_per_client(net: NetworkSpec, hub_app: Any, client_as: Any) -> None:
    admin, one, two = client_as("admin"), client_as(f"client:{BSN1}"), client_as(f"client:{BSN2}")
    after = await last_seq(hub_app)
    query = f"identifier={quote(BSN_SYSTEM)}|{BSN1},{quote(BSN_SYSTEM)}|{BSN2}"
    r = await admin.get(f"/fhir/Patient?{query}")
    assert {e["resource"]["id"] for e in r.json()["entry"]} == {"pat-0", "pat-1"}
    for me, mine, other, other_bsn in ((one, "pat-0", "pat-1", BSN2), (two, "pat-1", "pat-0", BSN1)):
        events = await audit_view(me, after)
        assert len(events) == 1, [event_text(e)[:300] for e in events]
        seen = event_text(events[0])
        assert mine in seen and other not in seen and other_bsn not in seen


async def test_denied_and_empty_attempts_are_in_the_clients_view(
    net: NetworkSpec, hub_app: Any, client_as: Any
) -> None:
    c, two = client_as(f"org:{C}"), client_as(f"client:{BSN2}")
    after = await last_seq(hub_app)
    plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/pat-1"}}
    attempts = [
        await c.post("/fhir/CarePlan", json=plan),  # a refused write
        await c.get("/fhir/Patient/pat-1/$everything"),  # a refused $everything
        await c.get(f"/fhir/Patient?identifier={quote(BSN_SYSTEM)}|{BSN2}"),  # an empty BSN search
        await c.post("/fhir/Patient/_search", data={"identifier": f"{BSN_SYSTEM}|{BSN2}"}),  # by POST
        await c.get("/fhir/Observation?patient=pat-1"),
    ]
    assert [a.status_code for a in attempts][:1] == [403]
    assert all(a.status_code == 404 or a.json().get("total", 0) == 0 for a in attempts[1:])
    events = await audit_view(two, after)
    assert len(events) >= len(attempts), [event_text(e)[:200] for e in events]
    posted = [e for e in events if "_search" in event_text(e)]
    assert posted and any("identifier" in event_text(e) for e in posted)
    # The searching organisation's own view does not tell it whose BSN that was.
    own = [event_text(e) for e in await audit_view(c, after)]
    assert own and not [t for t in own if BSN2 in t and "Patient/pat-1" in t]


# -- 5. the unsealed tail -----------------------------------------------------------------------------


async def test_the_tail_is_sealed_within_seconds(hub_app: Any, fresh_db: Any, tmp_path: Any) -> None:
    """The app's writer (its default settings) seals a tail with traffic within seconds, and a
    witness outside the database holds the checkpoint (so a cut tail is found: test_audit_log)."""
    from hub.audit.checkpoints import read_witness
    from hub.audit.records import AuditRecord
    from hub.audit.verify import verify_log
    from hub.audit.writer import AuditWriter
    from hub.settings import Settings

    db = fresh_db
    defaults = Settings(database_url=str(db.url), var_dir=tmp_path)  # the hub's default sealing interval
    writer = AuditWriter.from_settings(db, defaults, key_dir=tmp_path)
    assert writer.checkpoint_seconds <= 5
    await writer.start()
    try:
        seq = await writer.record(AuditRecord("read", 200, patient_ids=("pat-0",)))
        async with db.read() as conn:
            early = await verify_log(conn, keyring=None)
        assert early.unsealed >= 1 and "after the last checkpoint" in early.summary()
        for _ in range(100):
            await asyncio.sleep(0.1)
            if any(w.seq >= seq for w in read_witness(tmp_path)):
                break
        assert any(w.seq >= seq for w in read_witness(tmp_path)), "a witnessed checkpoint within seconds"
    finally:
        await writer.stop()
