"""A professional's create leaves the care-relationship check to its write statement on PostgreSQL
(:meth:`hub.access.policy.AccessPolicy.write_guard`): the insert happens only when the organisation
is in care of every client the resource is about. Differential: the statement's condition equals the
separate check (:meth:`AccessPolicy._in_care_query`) for every client and kind of organisation; and
over HTTP, on both backends (SQLite asks separately), the same answers in the same order: a refusal
before what the content or a profile says, nothing written, the same message."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text

from hub.access.policy import AccessPolicy, build_policy
from hub.access.principal import Principal
from hub.store.tables import resource
from tests.api.access_helpers import build, load
from tests.api.test_access_rules import A, B, C, network
from tests.conftest import clean

SCOPES = frozenset({"system/*.cruds"})


async def _policy(ura: str) -> AccessPolicy:
    return await build_policy(None, Principal("professional", "ecd", scopes=SCOPES, organisation_ura=ura))


async def test_the_write_statements_care_condition_equals_the_separate_check(hub_app: Any, backend: str) -> None:
    if backend != "postgresql":
        # The condition is PostgreSQL SQL; on SQLite a create asks the separate check (covered by the
        # HTTP tests below, which run on both).
        assert hub_app.state.services.repo.db.is_sqlite
        return
    await clean(hub_app)
    await load(hub_app, build(network()))
    db = hub_app.state.services.repo.db
    async with db.write() as conn:
        ids = [r[0] for r in (await conn.execute(select(resource.c.res_id).where(resource.c.res_type == "Patient")))]
        ids.append("no-such-client")
        yeses = nos = 0
        for ura in (A, B, C, "29999999"):
            slow = await _policy(ura)
            separate = {p: await slow._in_care_query(conn, p) for p in ids}
            for group in [[p] for p in ids] + [ids, ids[:2]]:
                fast = await _policy(ura)
                fast.care_unconfirmed = list(group)
                guard = fast.write_guard()
                assert guard is not None
                held = (await conn.execute(text(f"SELECT {guard[0]}"), dict(guard[1]))).scalar_one()  # noqa: S608
                assert held == all(separate[p] for p in group), (ura, group)
                yeses += held
                nos += not held
    assert yeses and nos


async def _stored(hub_app: Any) -> int:
    """Observations in the database, whoever may see them."""
    async with hub_app.state.services.repo.db.read() as conn:
        query = select(func.count()).select_from(resource).where(resource.c.res_type == "Observation")
        return int((await conn.execute(query)).scalar_one())


OBS: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "subject": {"reference": "Patient/pat-0"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
}


async def test_a_create_without_care_is_refused_before_its_content_is_judged(hub_app: Any, client_as: Any) -> None:
    await clean(hub_app)
    await load(hub_app, build(network()))
    b, c = client_as(f"org:{B}"), client_as(f"org:{C}")
    before = await _stored(hub_app)
    refused = await c.post("/fhir/Observation", json=OBS)
    assert refused.status_code == 403, refused.text
    assert f"Organisation {C} has no care relationship with Patient/pat-0" in refused.text
    invalid = {**OBS, "status": "not-a-status"}
    assert (await c.post("/fhir/Observation", json=invalid)).status_code == 403  # not what the content says
    assert (await b.post("/fhir/Observation", json=invalid)).status_code in (400, 422)  # in care: the content
    assert await _stored(hub_app) == before  # nothing written
    # About two clients, one of them not in C's care: refused, naming that client.
    both = {**OBS, "subject": {"reference": "Patient/pat-1"}, "focus": [{"reference": "Patient/pat-0"}]}
    assert (await c.post("/fhir/Observation", json=both)).status_code == 403
    created = await b.post("/fhir/Observation", json=OBS)
    assert created.status_code == 201, created.text
    assert await _stored(hub_app) == before + 1
    # The same organisation's next create for the client, and after it registers one of its own.
    assert (await b.post("/fhir/Observation", json=OBS)).status_code == 201
    patient = await c.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Nieuw"}]})
    assert patient.status_code == 201, patient.text
    own = {**OBS, "subject": {"reference": f"Patient/{patient.json()['id']}"}}
    assert (await c.post("/fhir/Observation", json=own)).status_code == 201
