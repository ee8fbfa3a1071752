"""What ``Patient/{id}/$access`` shows, read from the access facts at one moment: the care
relations and consent rules in force, the organisations' types and names, the delegations and the
overdrachten (the API operation turns them into a Parameters resource)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.facts import patient_bsn
from hub.access.grant_inputs import organisation_types
from hub.access.tables import care_relation, consent_rule, delegation, overdracht_access
from hub.store.resources import references_of
from hub.store.tables import idx_token, resource


@dataclass(frozen=True, slots=True)
class AccessFacts:
    """One client's access facts in force at ``now`` (rows of their tables)."""

    relations: Sequence[RowMapping]
    rules: Sequence[RowMapping]
    #: URA -> the organisation's types.
    types: Mapping[str, frozenset[str]]
    #: URA -> the registered Organization's name (care relations and overdracht receivers).
    names: Mapping[str, str]
    #: pid -> ``Type/id`` of the resources the relations, rules and overdrachten come from.
    sources: Mapping[int, str]
    delegations: Sequence[RowMapping]
    #: (source pid, receiver URA, Task status) per overdracht Task.
    handovers: Sequence[tuple[int, str, str]]


async def access_facts(conn: AsyncConnection, patient_id: str, now: int) -> AccessFacts:
    """The facts of one client, on one connection (one snapshot on SQLite)."""
    relations = (
        (
            await conn.execute(
                select(care_relation).where(
                    care_relation.c.patient_id == patient_id, care_relation.c.start <= now, care_relation.c.end > now
                )
            )
        )
        .mappings()
        .all()
    )
    rules = (
        (
            await conn.execute(
                select(consent_rule).where(
                    consent_rule.c.patient_id == patient_id, consent_rule.c.start <= now, consent_rule.c.end > now
                )
            )
        )
        .mappings()
        .all()
    )
    uras = sorted({r["org_ura"] for r in relations})
    types = await organisation_types(conn, uras)
    bsn = await patient_bsn(conn, patient_id)
    delegations = (
        (
            await conn.execute(
                select(delegation).where(delegation.c.patient_bsn == (bsn or ""), delegation.c.active.is_(True))
            )
        )
        .mappings()
        .all()
        if bsn
        else []
    )
    handovers = [
        (int(h[0]), str(h[1]), str(h[2]))
        for h in (
            await conn.execute(
                select(overdracht_access.c.source_pid, overdracht_access.c.org_ura, overdracht_access.c.task_status)
                .where(overdracht_access.c.patient_id == patient_id, overdracht_access.c.scope == "task")
                .distinct()
            )
        ).all()
    ]
    pids = {r["source_pid"] for r in relations} | {r["source_pid"] for r in rules} | {h[0] for h in handovers}
    names = await organisation_names(conn, sorted(set(uras) | {h[1] for h in handovers}))
    return AccessFacts(relations, rules, types, names, await references_of(conn, pids), delegations, handovers)


async def organisation_names(conn: AsyncConnection, uras: list[str]) -> dict[str, str]:
    """URA -> the name of the (undeleted) Organization that carries it as identifier."""
    if not uras:
        return {}
    rows = (
        await conn.execute(
            select(idx_token.c.code, resource.c.content)
            .select_from(idx_token.join(resource, resource.c.pid == idx_token.c.pid))
            .where(
                idx_token.c.res_type == "Organization",
                idx_token.c.param == "identifier",
                idx_token.c.code.in_(uras),
                resource.c.deleted.is_(False),
            )
        )
    ).all()
    return {ura: orjson.loads(content).get("name", "") for ura, content in rows if content}
