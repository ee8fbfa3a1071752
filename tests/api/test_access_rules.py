"""The consent and access rules of DOMAIN.md as explicit scenarios, over HTTP.

One small network per test: organisations A (huisarts, type Z3) and B (thuiszorg, type T2) in the
care team of client 1, organisation C without a relationship, client 2 elsewhere; a mantelzorger
(person-0) with ``agenda`` delegated by client 1. Consent changes are made the way a client makes
them (PUT/DELETE of the Consent), and each takes effect on the very next request.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.access_helpers import (
    Actor,
    CareTeamSpec,
    ClinicalSpec,
    DelegationSpec,
    NetworkSpec,
    OrgSpec,
    Participant,
    PatientSpec,
    Provision,
    _privacy_consent,
    _provision_json,
    bsn_for,
    build,
    load,
)
from tests.conftest import clean

A, B, C = "30000001", "30000002", "30000003"
BSN1, BSN2 = bsn_for(1), bsn_for(2)
ORGS = (OrgSpec(A, ("Z3",)), OrgSpec(B, ("T2",)), OrgSpec(C, ()))
GLASS = {"X-Break-Glass": "acute opname, client niet aanspreekbaar"}

# The resources build() names for this network (see NETWORK).
OBS = "Observation/observation-0-0"  # medisch, written internally
PLAN = "CarePlan/careplan-0-1"  # zorgplan, written by A
APPT = "Appointment/appointment-0-2"  # agenda
OBS_BY_C = "Observation/observation-0-3"  # medisch, written by C (no relationship)
OTHER_OBS = "Observation/observation-1-0"  # client 2
OTHER_PLAN = "CarePlan/careplan-1-1"
CARETEAM = "CareTeam/ct-0-0"
DELEGATION = "Consent/deleg-0-0"


def network(**patient1: Any) -> NetworkSpec:
    p1: dict[str, Any] = {
        "bsn": BSN1,
        "registered_by": None,
        "care_teams": (
            CareTeamSpec(
                "active", "none", (Participant(0, "member", "none"), Participant(1, "onBehalfOf", "none")), None
            ),
        ),
        "service_requests": (),
        "tasks": (),
        "consents": (),
        "delegations": (DelegationSpec("active", 0, "100001", False, "none", ("agenda",)),),
        "clinical": (
            ClinicalSpec("observation", None),
            ClinicalSpec("careplan", 0),
            ClinicalSpec("appointment", None),
            ClinicalSpec("observation", 2),
        ),
    }
    p1.update(patient1)
    clinical2 = (ClinicalSpec("observation", None), ClinicalSpec("careplan", None))
    p2 = PatientSpec(BSN2, None, (), (), (), (), (), clinical2)
    return NetworkSpec(ORGS, (PatientSpec(**p1), p2), persons=1)


@pytest.fixture
async def net(hub_app: Any) -> NetworkSpec:
    await clean(hub_app)
    spec = network()
    await load(hub_app, build(spec))
    return spec


async def status(c: httpx.AsyncClient, url: str, **headers: str) -> int:
    return (await c.get(f"/fhir/{url}", headers=headers)).status_code


async def total(c: httpx.AsyncClient, query: str, **headers: str) -> int:
    resp = await c.get(f"/fhir/{query}", headers=headers)
    assert resp.status_code == 200, resp.text
    return int(resp.json()["total"])


def consent(cid: str, *provisions: Provision, patient: str = "pat-0", status_: str = "active") -> dict[str, Any]:
    root = _provision_json(provisions[0], ORGS)
    if len(provisions) > 1:
        root["provision"] = [_provision_json(p, ORGS) for p in provisions[1:]]
    return _privacy_consent(cid, patient, status_, "gegevensdeling", root)


def rule(decision: str, *categories: str, org: int | None = None, org_type: str | None = None) -> Provision:
    actors = (Actor("org", str(org)),) if org is not None else (Actor("type", org_type),) if org_type else ()
    return Provision(decision, "none", actors, tuple(categories), ())


async def put(c: httpx.AsyncClient, body: dict[str, Any]) -> None:
    resp = await c.put(f"/fhir/{body['resourceType']}/{body['id']}", json=body)
    assert resp.status_code in (200, 201), resp.text


# -- consent and withdrawal -------------------------------------------------------------------------


async def test_withdrawn_consent_takes_effect_on_the_next_request(net: NetworkSpec, client_as: Any) -> None:
    me, a = client_as(f"client:{BSN1}"), client_as(f"org:{A}")
    assert await status(a, OBS) == 404  # medisch needs an opt-in
    await put(me, consent("c-1", rule("permit", "medisch", org=0)))
    assert await status(a, OBS) == 200
    assert await total(a, "Observation?_total=accurate") == 2  # OBS and OBS_BY_C
    withdrawn = consent("c-1", rule("permit", "medisch", org=0), status_="inactive")
    await put(me, withdrawn)
    assert await status(a, OBS) == 404
    assert await total(a, "Observation?_total=accurate") == 0
    await put(me, consent("c-1", rule("permit", "medisch", org=0)))
    assert await status(a, OBS) == 200
    assert (await me.delete("/fhir/Consent/c-1")).status_code in (200, 204)
    assert await status(a, OBS) == 404
    assert await total(a, "Observation?_summary=count") == 0


async def test_withdrawn_delegation_takes_effect_on_the_next_request(net: NetworkSpec, client_as: Any) -> None:
    me, helper = client_as(f"client:{BSN1}"), client_as(f"person:person-0:for:{BSN1}")
    assert await status(helper, APPT) == 200
    assert await status(helper, PLAN) == 404  # not delegated
    assert await status(helper, OBS) == 404
    resp = await me.get(f"/fhir/{DELEGATION}")
    assert resp.status_code == 200
    body = resp.json()
    body["provision"]["code"].append(
        {"coding": [{"system": "https://zorgnet-hub.nl/fhir/CodeSystem/data-category", "code": "zorgplan"}]}
    )
    await put(me, body)
    assert await status(helper, PLAN) == 200  # widened at once
    await put(me, {**body, "status": "inactive"})
    assert await status(helper, APPT) == 404
    assert await status(helper, PLAN) == 404
    await put(me, {**body, "status": "active"})
    assert await status(helper, APPT) == 200
    assert (await me.delete(f"/fhir/{DELEGATION}")).status_code in (200, 204)
    assert await status(helper, APPT) == 404
    assert await total(helper, "Appointment?_total=accurate") == 0


async def test_ended_care_relationship_closes_access_but_the_author_keeps_its_own(
    net: NetworkSpec, client_as: Any
) -> None:
    me, a, b = client_as(f"client:{BSN1}"), client_as(f"org:{A}"), client_as(f"org:{B}")
    assert await status(b, PLAN) == 200
    assert await status(a, PLAN) == 200
    team = (await me.get(f"/fhir/{CARETEAM}")).json()
    await put(me, {**team, "status": "inactive"})
    assert await status(b, PLAN) == 404
    assert await status(b, CARETEAM) == 404
    assert await total(b, "CarePlan?_total=accurate") == 0
    assert await status(a, PLAN) == 200  # A wrote it
    assert await total(a, "CarePlan?_total=accurate") == 1
    assert await status(a, APPT) == 404  # but nothing else of the client any more
    # The author of a resource keeps it even without any relationship.
    assert await status(client_as(f"org:{C}"), OBS_BY_C) == 200
    assert await status(client_as(f"org:{C}"), OBS) == 404


async def test_a_professional_writes_only_with_a_care_relationship(net: NetworkSpec, client_as: Any) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": "Patient/pat-0"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    }
    b, c = client_as(f"org:{B}"), client_as(f"org:{C}")
    resp = await b.post("/fhir/Observation", json=obs)
    assert resp.status_code == 201, resp.text
    assert await status(b, f"Observation/{resp.json()['id']}") == 200  # its own, despite medisch being closed
    assert (await c.post("/fhir/Observation", json=obs)).status_code == 403


# -- specificity ------------------------------------------------------------------------------------


async def test_specific_beats_general_and_deny_wins_ties(net: NetworkSpec, client_as: Any) -> None:
    me, a, b = client_as(f"client:{BSN1}"), client_as(f"org:{A}"), client_as(f"org:{B}")
    # Everybody: no zorgplan; organisation A: yes (organisation + category beats category).
    await put(me, consent("c-1", rule("deny", "zorgplan"), rule("permit", "zorgplan", org=0)))
    assert await status(a, PLAN) == 200
    assert await status(b, PLAN) == 404
    # Organisation type T2 (B): permitted and denied zorgplan at the same specificity: denied.
    await put(me, consent("c-1", rule("permit", "zorgplan", org_type="T2"), rule("deny", "zorgplan", org_type="T2")))
    assert await status(b, PLAN) == 404
    assert await status(a, PLAN) == 200  # not a T2 organisation: the default (open) holds
    # Type-level permission for medisch beats an objection for everybody.
    await put(me, consent("c-1", rule("deny", "medisch"), rule("permit", "medisch", org_type="Z3")))
    assert await status(a, OBS) == 200
    assert await status(b, OBS) == 404
    # A specific objection beats a general permission: all of netwerk for B's type, not for B.
    await put(me, consent("c-1", rule("permit", "netwerk", org_type="T2"), rule("deny", "netwerk", org=1)))
    assert await status(b, CARETEAM) == 404
    assert await status(a, CARETEAM) == 200


async def test_medisch_is_opt_in(net: NetworkSpec, client_as: Any) -> None:
    me, a = client_as(f"client:{BSN1}"), client_as(f"org:{A}")
    assert await status(a, PLAN) == 200  # zorgplan is open by default within a relationship
    assert await status(a, OBS) == 404
    assert await total(a, "Observation?_total=accurate") == 0
    assert await total(a, "Patient/pat-0/Observation?_total=accurate") == 0
    await put(me, consent("c-1", rule("permit", "medisch", org_type="Z3")))
    assert await status(a, OBS) == 200
    assert await total(a, "Observation?_total=accurate") == 2  # OBS and OBS_BY_C
    assert await status(client_as(f"org:{B}"), OBS) == 404  # a T2 organisation did not get it


# -- emergency ----------------------------------------------------------------------------------------


async def open_glass(c: httpx.AsyncClient, patient: str = "pat-0") -> httpx.Response:
    """Break the glass for one client: a stored, time-bounded grant (reason code + text)."""
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueCode": "niet-aanspreekbaar"},
            {"name": "text", "valueString": "acute opname, client niet aanspreekbaar"},
        ],
    }
    return await c.post(f"/fhir/Patient/{patient}/$break-glass", json=body)


async def test_break_the_glass(net: NetworkSpec, client_as: Any) -> None:
    c = client_as(f"org:{C}")
    assert await status(c, PLAN) == 404
    assert await status(c, OBS) == 404
    assert await status(c, PLAN, **GLASS) == 404  # no grant yet: the header alone opens nothing
    assert (await open_glass(c)).status_code == 200
    assert await status(c, PLAN, **GLASS) == 200
    assert await status(c, OBS, **GLASS) == 200  # opt-in categories too: the client did not object
    everything = (await c.get("/fhir/Patient/pat-0/$everything?_count=100", headers=GLASS)).json()
    assert {OBS, PLAN, APPT} <= {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in everything["entry"]}
    assert await status(c, PLAN, **{"X-Break-Glass": "x"}) == 400  # a reason is required
    # Read-only.
    plan = (await c.get(f"/fhir/{PLAN}", headers=GLASS)).json()
    assert (await c.put(f"/fhir/{PLAN}", json=plan, headers=GLASS)).status_code == 403
    assert (await c.delete(f"/fhir/{PLAN}", headers=GLASS)).status_code == 403
    # Only for professionals.
    assert await status(client_as(f"client:{BSN2}"), "Patient/pat-1", **GLASS) == 403


async def test_break_the_glass_is_refused_where_the_client_objected(net: NetworkSpec, client_as: Any) -> None:
    me, c = client_as(f"client:{BSN1}"), client_as(f"org:{C}")
    await put(me, consent("c-1", rule("deny", "zorgplan"), rule("deny", "medisch", org=2)))
    assert (await open_glass(c)).status_code == 200
    assert await status(c, PLAN, **GLASS) == 404
    assert await status(c, OBS, **GLASS) == 404
    assert await status(c, OBS_BY_C, **GLASS) == 200  # what it wrote itself
    assert await status(c, APPT, **GLASS) == 200  # no objection to agenda
    # An objection that a more specific permission overrides is no objection for that organisation.
    await put(me, consent("c-1", rule("deny", "zorgplan"), rule("permit", "zorgplan", org=2)))
    assert await status(c, PLAN, **GLASS) == 200
    assert await status(c, PLAN) == 404  # still no relationship: only the glass opens it
    # An objection for another purpose of use (research) is not an objection to treatment.
    research = Provision("deny", "none", (), ("zorgplan",), ("HRESCH",))
    await put(me, consent("c-1", research))
    assert await status(c, PLAN, **GLASS) == 200


# -- administrators and clients -----------------------------------------------------------------------


async def test_admin_never_sees_clinical_categories(net: NetworkSpec, client_as: Any) -> None:
    admin = client_as("admin")
    for url in (OBS, PLAN, APPT, OBS_BY_C, OTHER_OBS):
        assert await status(admin, url) == 404, url
    for url in ("Patient/pat-0", "Patient/pat-1", CARETEAM, DELEGATION, "Organization/org-0"):
        assert await status(admin, url) == 200, url
    assert await total(admin, "Observation?_total=accurate") == 0
    assert await total(admin, "CarePlan?_summary=count") == 0
    assert await total(admin, "Patient?_total=accurate") == 2
    everything = (await admin.get("/fhir/Patient/pat-0/$everything?_count=100")).json()
    categories = {e["resource"]["resourceType"] for e in everything.get("entry", [])}
    assert not categories & {"Observation", "CarePlan", "Appointment"}


async def test_clients_see_all_their_own_data_and_nothing_else(net: NetworkSpec, client_as: Any) -> None:
    me = client_as(f"client:{BSN1}")
    mine = [it for it in build(net) if it.patient == "pat-0"]
    theirs = [it for it in build(net) if it.patient == "pat-1"]
    for it in mine:
        assert await status(me, it.key) == 200, it.key
    for it in theirs:
        assert await status(me, it.key) == 404, it.key
    for res_type in ("Observation", "CarePlan", "Consent", "RelatedPerson", "Patient"):
        want = sum(1 for it in mine if it.res_type == res_type)
        assert await total(me, f"{res_type}?_total=accurate") == want, res_type
    stranger = client_as(f"client:{bsn_for(77)}")
    assert await total(stranger, "Observation?_total=accurate") == 0
    assert await total(stranger, "Organization?_total=accurate") == 3  # reference data is public


# -- nothing leaks --------------------------------------------------------------------------------------


async def test_invisible_resources_look_exactly_like_missing_ones(net: NetworkSpec, client_as: Any) -> None:
    b = client_as(f"org:{B}")
    hidden = await b.get(f"/fhir/{OTHER_OBS}")
    missing = await b.get("/fhir/Observation/does-not-exist")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["resourceType"] == missing.json()["resourceType"] == "OperationOutcome"
    assert (await b.get(f"/fhir/{OTHER_OBS}/_history")).status_code == 404
    assert (await b.get(f"/fhir/{OTHER_OBS}/_history/1")).status_code == 404
    assert await total(b, "Observation?_total=accurate") == 0
    assert await total(b, "Observation?_summary=count") == 0
    assert (
        await total(
            b, f"Observation?subject:Patient.identifier=http://fhir.nl/fhir/NamingSystem/bsn|{BSN2}&_total=accurate"
        )
        == 0
    )
    assert await total(b, "Patient?_has:Observation:subject:code=http://loinc.org|8867-4&_total=accurate") == 0
    assert await total(b, "CarePlan?_total=accurate") == 1  # client 1's plan, in its care
    assert (await client_as("admin").get(f"/fhir/{OTHER_PLAN}")).status_code == 404


async def test_if_none_exist_on_an_invisible_match_creates(net: NetworkSpec, client_as: Any) -> None:
    b = client_as(f"org:{B}")
    ident = "urn:zorgnet-test:observation|obs-0-0"  # identifies OBS, which B may not see (medisch)
    body = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": "Patient/pat-0"},
        "identifier": [{"system": "urn:zorgnet-test:observation", "value": "obs-0-0"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    }
    resp = await b.post("/fhir/Observation", json=body, headers={"If-None-Exist": f"identifier={ident}"})
    assert resp.status_code == 201, resp.text
    created = resp.json()["id"]
    assert created != "observation-0-0"
    # Now B sees exactly one match (its own): the same request finds it.
    again = await b.post("/fhir/Observation", json=body, headers={"If-None-Exist": f"identifier={ident}"})
    assert again.status_code == 200
    assert again.json()["id"] == created
    # A conditional update by B on the same criteria updates its own, not the hidden one.
    put_resp = await b.put(f"/fhir/Observation?identifier={ident}", json=body)
    assert put_resp.status_code == 200
    assert put_resp.json()["id"] == created
    # The client sees both: two matches are ambiguous for them.
    me = client_as(f"client:{BSN1}")
    assert await total(me, f"Observation?identifier={ident}&_total=accurate") == 2


async def test_conditional_creates_in_a_bundle_do_not_match_what_the_caller_cannot_see(
    net: NetworkSpec, client_as: Any
) -> None:
    """The transaction matches its conditional creates together; still through the caller's eyes."""
    b = client_as(f"org:{B}")

    def entry(n: int, value: str) -> dict[str, Any]:
        system = "urn:zorgnet-test:observation"
        return {
            "fullUrl": f"urn:uuid:dddddddd-0000-0000-0000-{n:012d}",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "subject": {"reference": "Patient/pat-0"},
                "identifier": [{"system": system, "value": value}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            },
            "request": {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier={system}|{value}"},
        }

    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry(0, "obs-0-0"), entry(1, "b-own")]}
    resp = await b.post("/fhir", json=bundle)  # obs-0-0 identifies OBS, which B may not see
    assert resp.status_code == 200, resp.text
    assert [e["response"]["status"][:3] for e in resp.json()["entry"]] == ["201", "201"]
    again = await b.post("/fhir", json=bundle)
    assert [e["response"]["status"][:3] for e in again.json()["entry"]] == ["200", "200"]
    # each matched its own entry's resource (B's new one), not the hidden OBS
    assert [e["response"]["location"] for e in again.json()["entry"]] == [
        e["response"]["location"] for e in resp.json()["entry"]
    ]


async def test_organisation_registered_after_the_care_team_still_counts(client: Any, client_as: Any) -> None:
    """A CareTeam may name an Organization before it is registered (or later in the same Bundle):
    registering it derives the care relationship then."""
    r = await client.post(
        "/fhir",
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:00000000-0000-0000-0000-0000000000c1",
                    "resource": {
                        "resourceType": "Patient",
                        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999998286"}],
                    },
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": {
                        "resourceType": "CareTeam",
                        "status": "active",
                        "subject": {"reference": "urn:uuid:00000000-0000-0000-0000-0000000000c1"},
                        "participant": [{"member": {"reference": "Organization/late-org"}}],
                    },
                    "request": {"method": "POST", "url": "CareTeam"},
                },
            ],
        },
    )
    assert r.status_code == 200, r.text
    late = client_as("org:00055555")
    assert (await late.get("/fhir/Patient?_summary=count")).json()["total"] == 0
    org = {
        "resourceType": "Organization",
        "id": "late-org",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "00055555"}],
    }
    assert (await client.put("/fhir/Organization/late-org", json=org)).status_code == 201
    assert (await late.get("/fhir/Patient?_summary=count")).json()["total"] == 1
