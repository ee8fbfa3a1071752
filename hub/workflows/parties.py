"""Who a caller is in a workflow, and who a reference names, as *parties*.

A party is a short string: ``ura:<URA>`` (an organisation, also through its PractitionerRoles),
``patient:<id>`` (the client), ``person:<id>`` (a person who logs in, e.g. a mantelzorger),
``admin``. Comparing parties is how the rules decide "is this yours".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import and_, false, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.policy import AccessPolicy
from hub.access.tables import oauth_client, organisation
from hub.fhir.references import resolve
from hub.store.tables import idx_token, resource
from hub.workflows.tables import resource_owner

PERSON_SYSTEM = "https://zorgnet-hub.nl/fhir/NamingSystem/person-id"
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"


def caller_parties(policy: AccessPolicy) -> frozenset[str]:
    """The parties the caller of ``policy`` (an :class:`~hub.access.policy.AccessPolicy`) speaks for.
    A legal representative has the client's own rights, so speaks for the client too."""
    p = policy.principal
    if p.kind == "professional" and p.organisation_ura:
        return frozenset({f"ura:{p.organisation_ura}"})
    if p.kind == "client":
        return frozenset(f"patient:{i}" for i in policy.patient_ids)
    if p.kind == "related" and p.person_id:
        out = {f"person:{p.person_id}"}
        if policy.delegated is not None and policy.delegated.legal_representative:
            out |= {f"patient:{i}" for i in policy.delegated.patient_ids}
        return frozenset(out)
    if p.kind == "admin":
        return frozenset({"admin"})
    return frozenset()


def creator_parties(policy: AccessPolicy, compartments: Iterable[str]) -> tuple[str, ...]:
    """Who is recorded as the creator of what this caller creates: the organisation, the client (for
    the Patient compartments of theirs the resource is in), the person, the administrator."""
    p = policy.principal
    if p.kind == "client":
        mine = [i for i in compartments if i in policy.patient_ids] or list(policy.patient_ids)
        return tuple(f"patient:{i}" for i in mine)
    if p.kind == "related" and p.person_id:
        return (f"person:{p.person_id}",)
    return tuple(sorted(caller_parties(policy)))


def _type_id(ref: Any) -> tuple[str, str] | None:
    """``(type, id)`` of a local resource the reference names; None for anything external (another
    server's ``.../Patient/<id>`` is not our client, so it names no party here)."""
    if not isinstance(ref, dict):
        return None
    target = resolve(ref, None)
    if target.res_type is None or target.res_id is None:
        return None
    return target.res_type, target.res_id


async def parties_of(conn: AsyncConnection, refs: list[Any]) -> list[frozenset[str]]:
    """The parties each reference names (in order; an empty set for what names nobody known)."""
    from hub.access.facts import _ref_key, organisation_uras

    uras = await organisation_uras(conn, refs)
    related_ids = sorted({ti[1] for ti in map(_type_id, refs) if ti is not None and ti[0] == "RelatedPerson"})
    persons: dict[str, str] = {}
    if related_ids:
        rows = (
            await conn.execute(
                select(resource.c.res_id, resource.c.content).where(
                    resource.c.res_type == "RelatedPerson",
                    resource.c.res_id.in_(related_ids),
                    resource.c.deleted == false(),
                )
            )
        ).all()
        for res_id, content in rows:
            for ident in (orjson.loads(content).get("identifier") or []) if content else []:
                if isinstance(ident, dict) and ident.get("system") == PERSON_SYSTEM and ident.get("value"):
                    persons[res_id] = str(ident["value"])
    out: list[frozenset[str]] = []
    for ref in refs:
        found: set[str] = set()
        ura = uras.get(_ref_key(ref))
        if ura:
            found.add(f"ura:{ura}")
        ti = _type_id(ref)
        if ti is not None and ti[0] == "Patient":
            found.add(f"patient:{ti[1]}")
        if ti is not None and ti[0] == "RelatedPerson" and ti[1] in persons:
            found.add(f"person:{persons[ti[1]]}")
        ident = ref.get("identifier") if isinstance(ref, dict) else None
        if isinstance(ident, dict) and ident.get("system") == PERSON_SYSTEM and ident.get("value"):
            found.add(f"person:{ident['value']}")
        out.append(frozenset(found))
    return out


async def is_hub_organisation(conn: AsyncConnection, ura: str, writer: frozenset[str]) -> bool:
    """Whether the organisation with this URA takes part in the hub, as far as ``writer`` cannot
    arrange itself: it is in the administrators' organisation registry, it has an active registered
    system client (how an organisation acts in the hub), or an Organization resource on the hub
    carries its URA that ``writer`` did not create (the network's directory as the parties keep it)."""
    registered = (
        await conn.execute(select(organisation.c.ura).where(organisation.c.ura == ura, organisation.c.active == true()))
    ).first()
    if registered is not None:
        return True
    client = (
        await conn.execute(
            select(oauth_client.c.client_id)
            .where(oauth_client.c.organisation_ura == ura, oauth_client.c.active == true())
            .limit(1)
        )
    ).first()
    if client is not None:
        return True
    orgs = (
        await conn.execute(
            select(resource.c.pid)
            .select_from(idx_token.join(resource, resource.c.pid == idx_token.c.pid))
            .where(
                resource.c.res_type == "Organization",
                resource.c.deleted == false(),
                idx_token.c.param == "identifier",
                idx_token.c.system == URA_SYSTEM,
                idx_token.c.code == ura,
            )
        )
    ).all()
    if not orgs:
        return False
    mine = {
        r[0]
        for r in (
            await conn.execute(
                select(resource_owner.c.pid).where(
                    and_(resource_owner.c.pid.in_([o[0] for o in orgs]), resource_owner.c.party.in_(sorted(writer)))
                )
            )
        ).all()
    }
    return any(o[0] not in mine for o in orgs)
