"""An overdracht with a counterpart outside the hub (imported from / exported to an eOverdracht STU3
system), over real HTTP on SQLite and PostgreSQL.

The hub party's own side writes the whole Task (it records the outside party's steps, which that
party cannot write itself); the outside party is named by identifier only and must be no hub party,
so nobody can pass a handover off as one from or to another hub party; and such a Task makes no
access facts. The expected rules are written here from docs/adapter-wijkverpleging.md.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from hub.access.tables import care_relation
from hub.store.tables import resource
from hub.workflows.tables import overdracht_access
from tests.api.test_workflows import (
    LOINC,
    ORGS,
    PARTIES,
    SCT,
    URA,
    As,
    _diagnostics,
    handoff,
    network,
    step_ops,
    write_internal,
)
from tests.conftest import clean, token_for_app

EXCHANGE = "https://zorgnet-hub.nl/fhir/CodeSystem/overdracht-exchange"
#: An organisation outside the hub (an eOverdracht STU3 system), and one with a registered system
#: client only (a hub party without an Organization resource).
OUTSIDE_URA = "00099999"
CLIENT_ONLY_URA = "00077777"
#: A hub party known from the administrators' organisation registry only.
REGISTRY_ONLY_URA = "00066666"
HANDOFF_INPUT = {
    "type": {"coding": [{"system": SCT, "code": "371535009"}]},
    "valueReference": {"reference": "Composition/handoff"},
}


def exchanged(kind: str, *, requester: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "meta": {"tag": [{"system": EXCHANGE, "code": kind}]},
        "code": {"coding": [{"system": SCT, "code": "308292007"}]},
        "for": {"reference": "Patient/client"},
        "requester": requester,
        "owner": owner,
        "input": [
            {
                "type": {"coding": [{"system": LOINC, "code": "57830-2"}]},
                "valueReference": {"reference": "Composition/notice"},
            }
        ],
    }


def by_ura(ura: str) -> dict[str, Any]:
    return {"identifier": {"system": URA, "value": ura}, "display": "VVT buiten het netwerk"}


@pytest_asyncio.fixture(loop_scope="session")
async def world(hub_app: Any) -> AsyncIterator[tuple[Any, dict[str, As]]]:
    await clean(hub_app)
    await write_internal(hub_app, [*network(), handoff()])
    parties = {**PARTIES, "outside": f"org:{OUTSIDE_URA}", "client-only": f"org:{CLIENT_ONLY_URA}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub_app), base_url="http://hub.test") as http:
        key = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        admin = {"Authorization": f"Bearer {token_for_app(hub_app, 'admin')}"}
        r = await http.post(
            "/admin/apps",
            headers=admin,
            json={"kind": "system", "name": "ECD elders", "ura": CLIENT_ONLY_URA, "public_key_pem": key},
        )
        assert r.status_code in (200, 201), r.text
        r = await http.post(
            "/admin/organisations",
            headers=admin,
            json={"ura": REGISTRY_ONLY_URA, "name": "Thuiszorg Oost", "types": ["X3"]},
        )
        assert r.status_code in (200, 201), r.text
        out: dict[str, As] = {}
        for name, spec in parties.items():
            who = As.__new__(As)
            who.http, who.party = http, name
            who.h = {"Authorization": f"Bearer {token_for_app(hub_app, spec)}"}
            out[name] = who
        yield hub_app, out


async def facts_of(app: Any, task_id: str) -> tuple[int, int]:
    """(overdracht_access rows, care_relation rows) that the Task made."""
    async with app.state.services.repo.db.read() as conn:
        pid = (
            await conn.execute(
                select(resource.c.pid).where(resource.c.res_type == "Task", resource.c.res_id == task_id)
            )
        ).scalar_one()
        access = (
            await conn.execute(select(overdracht_access.c.source_pid).where(overdracht_access.c.source_pid == pid))
        ).all()
        care = (await conn.execute(select(care_relation.c.source_pid).where(care_relation.c.source_pid == pid))).all()
    return len(access), len(care)


async def walk(who: As, task_id: str) -> list[str]:
    """The whole overdracht as one hub party records it: received, accepted, the handoff attached,
    in-progress, completed. Returns the states it went through."""
    seen = []
    for new in ("received", "accepted"):
        r = await who.patch(f"Task/{task_id}", step_ops(new))
        assert r.status_code == 200, r.text
        seen.append(r.json()["status"])
    r = await who.patch(f"Task/{task_id}", [{"op": "add", "path": "/input/-", "value": HANDOFF_INPUT}])
    assert r.status_code == 200, r.text
    for new in ("in-progress", "completed"):
        r = await who.patch(f"Task/{task_id}", step_ops(new))
        assert r.status_code == 200, r.text
        seen.append(r.json()["status"])
    return seen


async def test_an_imported_overdracht_is_recorded_by_its_receiver_alone(world: Any) -> None:
    app, p = world
    # 'third' is in the client's care (CareTeam) and imports a handover an outside STU3 sender sent it
    task = exchanged("imported", requester=by_ura(OUTSIDE_URA), owner={"reference": "Organization/org-third"})
    r = await p["third"].post(task)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    assert await walk(p["third"], tid) == ["received", "accepted", "in-progress", "completed"]
    # nothing derived: no reading by state for anyone, no care relation from the completion
    assert await facts_of(app, tid) == (0, 0)
    # the outside organisation, given a token, takes no step and reads nothing
    r = await p["outside"].get(f"Task/{tid}")
    assert r.status_code == 404
    # the tag stays: an imported overdracht does not turn into an ordinary one
    r = await p["third"].patch(f"Task/{tid}", [{"op": "remove", "path": "/meta/tag"}])
    assert r.status_code in (409, 422), r.text  # closed (completed) is refused first


async def test_an_imported_overdracht_may_be_cancelled_on_the_outside_senders_behalf(world: Any) -> None:
    _app, p = world
    task = exchanged("imported", requester=by_ura(OUTSIDE_URA), owner={"reference": "Organization/org-third"})
    tid = (await p["third"].post(task)).json()["id"]
    r = await p["third"].patch(f"Task/{tid}", [{"op": "remove", "path": "/meta/tag"}])
    assert r.status_code == 422 and "Rule overdracht-immutable" in _diagnostics(r), r.text
    r = await p["third"].patch(f"Task/{tid}", step_ops("cancelled"))
    assert r.status_code == 200, r.text
    # nobody else touches it: not the hub party the identifier might be confused with, not the client
    for who in ("sender", "receiver"):
        assert (await p[who].patch(f"Task/{tid}", step_ops("accepted"))).status_code in (404, 409)


async def test_no_overdracht_is_imported_or_exported_in_a_hub_partys_name(world: Any) -> None:
    _app, p = world
    third = {"reference": "Organization/org-third"}
    refused = {
        # a hub party with an Organization on the hub (the network's directory)
        "directory": (
            exchanged("imported", requester=by_ura(ORGS["sender"]), owner=third),
            403,
            "overdracht-external-hub-party",
        ),
        # a hub party known by its registered system client only
        "client": (
            exchanged("imported", requester=by_ura(CLIENT_ONLY_URA), owner=third),
            403,
            "overdracht-external-hub-party",
        ),
        # a hub party known from the administrators' organisation registry only
        "registry": (
            exchanged("imported", requester=by_ura(REGISTRY_ONLY_URA), owner=third),
            403,
            "overdracht-external-hub-party",
        ),
        # the outside party by a literal reference (a resource on the hub that could be anyone's)
        "literal": (
            exchanged("imported", requester={"reference": "Organization/org-sender"}, owner=third),
            422,
            "overdracht-external",
        ),
        # importing from yourself is no import
        "self": (exchanged("imported", requester=by_ura(ORGS["third"]), owner=third), 422, "overdracht-external"),
        # importing for another organisation
        "other-owner": (
            exchanged("imported", requester=by_ura(OUTSIDE_URA), owner={"reference": "Organization/org-receiver"}),
            403,
            "overdracht-exchange-party",
        ),
        # exporting to a hub party
        "export-hub": (
            exchanged("exported", requester=third, owner=by_ura(ORGS["receiver"])),
            403,
            "overdracht-external-hub-party",
        ),
        # an unknown exchange code
        "code": (exchanged("forwarded", requester=by_ura(OUTSIDE_URA), owner=third), 422, "overdracht-exchange"),
    }
    for case, (task, status, rule) in refused.items():
        r = await p["third"].post(task)
        assert r.status_code == status and f"Rule {rule}:" in _diagnostics(r), (case, r.text)
    # without the tag, the ordinary rule stands: the requester must be the writer
    plain = exchanged("imported", requester=by_ura(ORGS["sender"]), owner=third)
    plain.pop("meta")
    r = await p["third"].post(plain)
    assert r.status_code == 403 and "Rule overdracht-sender" in _diagnostics(r), r.text
    # an Organization the writer made itself does not make a hub party of an outside organisation
    own = {"resourceType": "Organization", "identifier": [{"system": URA, "value": "00088888"}], "name": "VVT"}
    assert (await p["third"].post(own)).status_code == 201
    r = await p["third"].post(exchanged("imported", requester=by_ura("00088888"), owner=third))
    assert r.status_code == 201, r.text


async def test_an_exported_overdracht_is_recorded_by_its_sender_alone(world: Any) -> None:
    app, p = world
    task = exchanged("exported", requester={"reference": "Organization/org-sender"}, owner=by_ura(OUTSIDE_URA))
    r = await p["third"].post(copy.deepcopy(task))
    assert r.status_code == 403 and "Rule overdracht-exchange-party" in _diagnostics(r), r.text
    r = await p["sender"].post(task)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    assert await walk(p["sender"], tid) == ["received", "accepted", "in-progress", "completed"]
    assert await facts_of(app, tid) == (0, 0)
    assert (await p["outside"].get(f"Task/{tid}")).status_code == 404


async def test_the_same_overdracht_between_hub_parties_does_make_facts(world: Any) -> None:
    """The control for the two above: untagged, the receiver's reading and care relation are derived."""
    app, p = world
    task = exchanged(
        "imported", requester={"reference": "Organization/org-sender"}, owner={"reference": "Organization/org-receiver"}
    )
    task.pop("meta")
    tid = (await p["sender"].post(task)).json()["id"]
    for new in ("received", "accepted"):
        assert (await p["receiver"].patch(f"Task/{tid}", step_ops(new))).status_code == 200
    ops = [{"op": "add", "path": "/input/-", "value": HANDOFF_INPUT}]
    assert (await p["sender"].patch(f"Task/{tid}", ops)).status_code == 200
    for new in ("in-progress", "completed"):
        assert (await p["receiver"].patch(f"Task/{tid}", step_ops(new))).status_code == 200
    access, care = await facts_of(app, tid)
    assert access > 0 and care > 0
