"""The workflow check of one write, as the repository asks it after the access decision
(:meth:`AccessPolicy.check_write`) allowed the write (:func:`write_rules`, its hook).

It runs after the caller was found entitled to write the data at all (scopes, consent, care
relation, delegation) and decides whether *this* change is theirs to make:

========================  ===================================================================
rule                      who may
========================  ===================================================================
ownership                 update a resource: its creator, or the party it names as author
                          (CarePlan.author, Goal.expressedBy, Composition.author,
                          Task.requester, ServiceRequest.requester, CareTeam.managingOrganization);
                          resources the hub loaded itself with no named author: any entitled writer
ownership-delete          delete: the same parties only (the way out is a status change)
client-own                the client (and a legal representative) also update their own network
                          and consent data, and a mantelzorger with ``zorgplan`` the client's goals
careplan-*                everyone else changes a shared care plan's activities only; the
                          client (and a legal representative) also pauses or ends another
                          party's activity in their own plan (:mod:`hub.workflows.careplan`)
overdracht-*              an overdracht Task changes by the state machine only
                          (:mod:`hub.workflows.overdracht`)
overdracht-external*      an overdracht with a counterpart outside the hub (tag ``imported``/
                          ``exported``) names that counterpart by identifier only, never a hub
                          party (:func:`check_external`); its hub party takes both sides' steps
========================  ===================================================================

The answer is a :class:`WriteVerdict`: who to record as the creator, and the
:class:`StateChange` the write makes (for the outbox).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.policy import AccessPolicy
from hub.store.policy import StorePolicy
from hub.store.resources import Stored
from hub.workflows import careplan, overdracht
from hub.workflows.parties import caller_parties, creator_parties, is_hub_organisation, parties_of
from hub.workflows.refusal import refuse
from hub.workflows.tables import resource_owner

TOPIC_BASE = "http://zorgnet.nl/fhir/SubscriptionTopic/"
#: The outbox's hook (see :class:`hub.store.repository.Repository`): (conn, StateChange) -> None.
OnStateChange = Callable[[AsyncConnection, "StateChange"], Awaitable[None]]
#: The elements that name a resource's author, by type (ownership besides the creator).
NAMED_OWNER: dict[str, tuple[str, ...]] = {
    "CarePlan": ("author",),
    "Goal": ("expressedBy",),
    "Composition": ("author",),
    "Task": ("requester",),
    "ServiceRequest": ("requester",),
    "CareTeam": ("managingOrganization",),
}
#: Categories of their own data the client (or legal representative) updates whoever wrote it.
CLIENT_OWN = frozenset({"netwerk", "toestemming"})


@dataclass(frozen=True, slots=True)
class StateChange:
    """A change of state a write makes, to be written to the outbox in the write's transaction.

    ``version`` is filled in by the repository once the version is stored (None before)."""

    topic: str
    res_type: str
    res_id: str
    patient_id: str | None
    previous: str | None
    status: str
    party: str
    version: int | None = None

    def stored_as(self, version: int, res_id: str) -> StateChange:
        return replace(self, version=version, res_id=res_id)


@dataclass(frozen=True, slots=True)
class WriteVerdict:
    """What the workflow check allowed: the creator parties to record (when the write creates the
    resource) and the state change it makes, if any."""

    owners: tuple[str, ...] = ()
    change: StateChange | None = None

    async def keep(self, conn: AsyncConnection, stored: Stored, on_state_change: OnStateChange | None) -> None:
        """After the write: hand the state change to the outbox hook. (The creators, ``owners``, the
        store wrote with the version itself: hub.store.resources.Authorship.)"""
        if self.change is not None and on_state_change is not None:
            await on_state_change(conn, self.change.stored_as(stored.version, stored.res_id))


def _refs(resource: dict[str, Any], names: tuple[str, ...]) -> list[Any]:
    out: list[Any] = []
    for name in names:
        value = resource.get(name)
        out += value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    return out


def _patient(resource: dict[str, Any]) -> str | None:
    ref = resource.get("for") or resource.get("subject") or {}
    text = ref.get("reference") if isinstance(ref, dict) else None
    if isinstance(text, str) and text.startswith("Patient/"):
        return text.split("/")[1]
    return None


async def owners_of(conn: AsyncConnection, current: Stored, resource: dict[str, Any]) -> frozenset[str]:
    """The recorded creator(s) of ``current`` (read with it, :attr:`Stored.owners`, or here) and the
    parties the resource names as its author."""
    if current.owners is not None:
        found = set(current.owners)
    else:
        rows = (await conn.execute(select(resource_owner.c.party).where(resource_owner.c.pid == current.pid))).all()
        found = {r[0] for r in rows}
    named = _refs(resource, NAMED_OWNER.get(str(resource.get("resourceType")), ()))
    for parties in await parties_of(conn, named) if named else []:
        found |= parties
    return frozenset(found)


async def task_roles(conn: AsyncConnection, task: dict[str, Any], parties: frozenset[str]) -> frozenset[str]:
    """``sender`` when the caller is the Task's requester, ``receiver`` when it is its owner (both
    for the hub party of an overdracht with a counterpart outside the hub, see
    :func:`hub.workflows.overdracht.roles_in`)."""
    requester, owner = await parties_of(conn, [task.get("requester"), task.get("owner")])
    return overdracht.roles_in(task, bool(parties & requester), bool(parties & owner))


async def check_external(conn: AsyncConnection, task: dict[str, Any], parties: frozenset[str]) -> None:
    """A new imported/exported overdracht: named by identifier only, the outside party is an
    organisation that is neither the writer nor another hub party; the writer is the other side."""
    overdracht.check_external_form(task)
    kind = overdracht.exchange(task)
    if kind is None:
        return
    outside = overdracht.EXTERNAL_SIDE[kind]
    where = "Task.requester" if outside == overdracht.SENDER else "Task.owner"
    ours = "Task.owner" if outside == overdracht.SENDER else "Task.requester"
    requester, owner = await parties_of(conn, [task.get("requester"), task.get("owner")])
    named, own = (requester, owner) if outside == overdracht.SENDER else (owner, requester)
    if not parties & own or not any(p.startswith("ura:") for p in parties):
        raise refuse(
            403,
            "overdracht-exchange-party",
            f"an {kind} overdracht is written by the hub organisation on its side: {ours} must name your organisation",
            expression=ours,
        )
    if parties & named or any(not p.startswith("ura:") for p in named):
        raise refuse(
            422,
            "overdracht-external",
            f"{where} of an {kind} overdracht names an organisation outside the hub, not you, a client or a person",
            expression=where,
        )
    for party in sorted(named):
        if await is_hub_organisation(conn, party.removeprefix("ura:"), parties):
            raise refuse(
                403,
                "overdracht-external-hub-party",
                f"{where} names {party}, which takes part in the "
                "hub: an overdracht with a hub party is made by that party itself, never imported or "
                "exported in its name",
                expression=where,
            )


def _party(parties: frozenset[str]) -> str:
    return sorted(parties)[0] if parties else ""


async def write_rules(
    conn: AsyncConnection,
    policy: StorePolicy,
    res_type: str,
    resource: dict[str, Any] | None,
    current: Stored | None,
    interaction: str,
    compartments: list[str],
    category: str,
) -> WriteVerdict:
    """The repository's hook (:data:`hub.store.policy.WriteRules`): the workflow rules of a caller's
    write. The repository asks it only for callers; the hub's own work is bound by no workflow rule."""
    if not isinstance(policy, AccessPolicy):
        raise TypeError(f"the workflow rules decide callers' writes, not {type(policy).__name__}'s")
    return await check(conn, policy, res_type, resource, current, interaction, compartments, category)


async def check(
    conn: AsyncConnection,
    policy: AccessPolicy,
    res_type: str,
    resource: dict[str, Any] | None,
    current: Stored | None,
    interaction: str,
    compartments: list[str],
    category: str,
) -> WriteVerdict:
    """Decide one write (``interaction`` c, u or d; ``resource`` None for a delete)."""
    parties = caller_parties(policy)
    kind = policy.principal.kind
    if current is None or current.deleted or current.content is None:
        change = None
        if resource is not None and overdracht.is_overdracht(resource):
            await check_external(conn, resource, parties)
            overdracht.check_create(resource, await task_roles(conn, resource, parties))
            change = StateChange(
                TOPIC_BASE + "overdracht",
                res_type,
                str(resource.get("id", "")),
                _patient(resource),
                None,
                str(resource.get("status")),
                _party(parties),
            )
        return WriteVerdict(creator_parties(policy, compartments), change)
    old = orjson.loads(current.content)
    if overdracht.is_overdracht(old) or overdracht.is_overdracht(resource):
        roles = await task_roles(conn, old, parties)
        if resource is None:
            overdracht.check_delete(old, roles)
            return WriteVerdict()
        if not overdracht.is_overdracht(resource) or not overdracht.is_overdracht(old):
            raise refuse(
                422,
                "overdracht-immutable",
                "Task.code does not change after the overdracht was sent",
                expression="Task.code",
            )
        overdracht.check_update(old, resource, roles)
        if old.get("status") == resource.get("status"):
            return WriteVerdict()
        return WriteVerdict(
            change=StateChange(
                TOPIC_BASE + "overdracht",
                res_type,
                current.res_id,
                _patient(resource),
                str(old.get("status")),
                str(resource.get("status")),
                _party(parties),
            )
        )
    owners = await owners_of(conn, current, old)
    change = _careplan_change(res_type, old, resource, current.res_id, parties)
    if not owners or parties & owners or kind == "admin":
        return WriteVerdict(change=change)
    legal = kind == "related" and policy.delegated is not None and policy.delegated.legal_representative
    if resource is not None and (kind == "client" or legal) and category in CLIENT_OWN:
        return WriteVerdict(change=change)
    if resource is not None and res_type == "Goal" and kind == "related" and policy.delegated is not None:
        if owners & {f"patient:{i}" for i in policy.delegated.patient_ids}:
            return WriteVerdict(change=change)  # the client's own goal (ClientGoal)
    if resource is not None and res_type == "CarePlan":
        acts = list(old.get("activity") or []) + list(resource.get("activity") or [])
        refs = [careplan.performer_refs(a) for a in acts]
        flat = [r for rs in refs for r in rs]
        resolved = await parties_of(conn, flat) if flat else []
        mine: list[bool] = []
        at = 0
        for rs in refs:
            mine.append(any(parties & found for found in resolved[at : at + len(rs)]))
            at += len(rs)
        verdicts = {id(a): m for a, m in zip(acts, mine, strict=True)}
        careplan.check_update(
            old,
            resource,
            performs=lambda a: verdicts.get(id(a), False),
            status_only=kind == "professional",
            client_say=kind == "client" or legal,
        )
        return WriteVerdict(change=change)
    who = ", ".join(sorted(owners))
    if resource is None:
        raise refuse(
            403,
            "ownership-delete",
            f"{res_type}/{current.res_id} can be deleted by its author only "
            f"({who}); change its status instead (e.g. 'entered-in-error', 'cancelled', 'revoked'), "
            "which is kept in its history",
            expression=res_type,
        )
    raise refuse(
        403,
        "ownership",
        f"{res_type}/{current.res_id} is changed by its author only ({who})"
        + ("; participants change the activities they perform" if res_type == "CarePlan" else ""),
        expression=res_type,
    )


def _careplan_change(
    res_type: str, old: dict[str, Any], new: dict[str, Any] | None, res_id: str, parties: frozenset[str]
) -> StateChange | None:
    """A shared care plan's status, or one of its activities' status, changed."""
    if res_type != "CarePlan" or new is None:
        return None

    def statuses(plan: dict[str, Any]) -> list[Any]:
        return [(a.get("detail") or {}).get("status") for a in plan.get("activity") or [] if isinstance(a, dict)]

    if old.get("status") == new.get("status") and statuses(old) == statuses(new):
        return None
    return StateChange(
        TOPIC_BASE + "careplan",
        res_type,
        res_id,
        _patient(new),
        str(old.get("status")),
        str(new.get("status")),
        _party(parties),
    )
