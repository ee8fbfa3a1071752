"""Keeping the derived access facts up to date, in the transaction of the write that implies them.

A write of a CareTeam, ServiceRequest or overdracht Task rewrites the care relationships it
implies; a write of a privacy Consent rewrites its rules (and, for a delegation Consent, the
delegation rows). Each then recomputes the ``access_grant`` rows of the patients concerned
(:mod:`hub.access.grants`), so a withdrawn consent or an ended care relationship takes effect on
the very next request.

Only references that name a resource on this hub count (:func:`hub.fhir.references.resolve`, the
same function the write check's compartments come from): a reference to another server never
yields a fact. A care relation comes only from a write its writer was entitled to make it by
(:meth:`hub.access.policy.AccessPolicy.fact_grantor`): an organisation already in the client's
care, the client or a legal representative, an administrator, a registered gemeente for a
toewijzing, or the hub itself; a mantelzorger's delegated write never makes one. The relation
holds only while the writer's own right holds (:func:`effective_relations`). Organisation types
come from the administrators' registry (:mod:`hub.access.organisations`), never from an
Organization resource.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import BigInteger, String, Text, and_, bindparam, delete, false, insert, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access import grant_inputs
from hub.access.decision import Policy
from hub.access.grant_inputs import patient_bsns
from hub.access.grants import Relation, Rule, grant_intervals
from hub.access.overdracht import CARE_STATES, OVERDRACHT_CODE, yields_access
from hub.access.tables import (
    access_grant,
    care_relation,
    care_source,
    consent_rule,
    delegation,
)
from hub.fhir.errors import BadRequest
from hub.fhir.normalize import date_range
from hub.fhir.references import local_id, resolve
from hub.fhir.validation.bsn import BSN_SYSTEM
from hub.store import deferred, pg_batch
from hub.store.clientkey import key_of_resource
from hub.store.direct import InTransaction
from hub.store.resources import Stored, patients_by_identifier
from hub.store.tables import DATE_MAX, DATE_MIN, idx_reference, idx_token, resource

URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
ORG_TYPE_SYSTEMS = frozenset(
    {
        "http://nictiz.nl/fhir/NamingSystem/organization-type",
        "urn:oid:2.16.840.1.113883.2.4.15.1060",
    }
)
PERSON_SYSTEM = "https://zorgnet-hub.nl/fhir/NamingSystem/person-id"
CONSENT_CATEGORY_SYSTEM = "https://zorgnet-hub.nl/fhir/CodeSystem/consent-category"
DATA_CATEGORY_SYSTEM = "https://zorgnet-hub.nl/fhir/CodeSystem/data-category"
#: Task states in which the receiving organisation takes part in the client's care (before that,
#: what it reads follows the Task's state: hub.workflows).
OPEN_TASK_STATES = CARE_STATES

DERIVING_TYPES = frozenset({"CareTeam", "ServiceRequest", "Task", "Consent", "Organization", "PractitionerRole"})
#: The types whose content implies care relations or consent rules.
SOURCE_TYPES = ("CareTeam", "ServiceRequest", "Task", "Consent")
#: Roles of a relationship grantor entitled on their own (not through another relation).
ROOT_GRANTORS = frozenset({"hub", "admin", "client", "gemeente"})
#: Relationship codes that carry the client's own rights (wettelijk vertegenwoordiger, curator,
#: voogd, mentor).
LEGAL_ROLES = frozenset({"24", "03", "11", "15"})

#: The write transaction's memo of organisation URAs by (type, id) (:func:`organisation_uras`).
URA_MEMO = "organisation_uras"

#: Who made a care relation: (kind, id), e.g. ("org", URA), ("person", person id), ("hub", None).
Grantor = tuple[str, str | None]
HUB: Grantor = ("hub", None)


async def writer_grantor(
    conn: AsyncConnection, writer: Policy, patient: str, resource: dict[str, Any]
) -> Grantor | None:
    """Who the write's care relations come from, or None when the writer may not make any.
    ``writer`` is the repository's access policy (the hub's own work: :data:`HUB`)."""
    return await writer.fact_grantor(conn, patient, resource)


async def after_write(
    conn: AsyncConnection,
    stored: Stored,
    resource: dict[str, Any] | None,
    author_ura: str | None,
    *,
    writer: Policy,
    base: str | None = None,
) -> None:
    """Maintain the facts a write implies (``resource`` None for a delete). ``writer`` is the
    caller's access policy, ``base`` the hub's FHIR base (for absolute references to itself)."""
    # (The author's ``resource_author`` row the store wrote with the version: hub.store.resources.Authorship.)
    if stored.res_type not in DERIVING_TYPES:
        return
    if stored.res_type in ("Organization", "PractitionerRole"):
        deferred.clear_memo(conn, URA_MEMO)  # who an organisation is may have changed
        # Who an organisation is (its URA, its type) can change what the resources naming it
        # imply, and they may have been written before it: derive those again. (A new
        # Organization without a URA changes nothing.)
        if not new_organisation_without_ura(stored, resource):
            await _rederive_referrers(conn, stored.res_type, stored.res_id, base)
        return
    grantor: Grantor | None = None
    if resource is not None and stored.res_type != "Consent":
        patient = _subject(resource, base)
        if patient is not None:
            grantor = await writer_grantor(conn, writer, patient, resource)
            if grantor is None and stored.res_type == "Task" and stored.version > 1:
                # An overdracht's receiver answers its Task (accepts, completes) before it is in
                # the client's care: the Task's relation keeps resting on the right it was made by.
                grantor = await _kept_grantor(conn, stored.pid)
    owe_recompute(
        conn,
        await _derive(
            conn,
            stored.pid,
            stored.res_type,
            resource,
            fresh=stored.version == 1,
            base=base,
            grantor=grantor,
            client_key=stored.client_key,
        ),
    )


def derives_anything(stored: Stored, resource: dict[str, Any] | None, replaced: Stored | None = None) -> bool:
    """Whether :func:`after_write` derives anything that changes for the write of ``stored``
    (``resource``; None: a deletion) replacing ``replaced`` (None: a create); one it derives nothing
    for may be made alone (hub.store.repository)."""
    return stored.res_type in DERIVING_TYPES and not organisation_without_ura(stored, resource, replaced)


def owe_recompute(conn: AsyncConnection, patients: Iterable[str]) -> None:
    """Recompute these patients' ``access_grant`` (and their relations' effective intervals) once in
    this transaction, before anything reads them or it commits (:mod:`hub.store.deferred`): a
    Bundle's writes about many clients recompute each client once, not once per write. The result
    is the same: a patient's facts are a function of that patient's current rows only."""
    deferred.owe(conn, recompute, patients)


async def settle(conn: AsyncConnection, patients: Iterable[str] | None = None) -> None:
    """Recompute now what this transaction's writes owe (for ``patients`` only, when given)."""
    await deferred.settle(conn, patients)


async def _kept_grantor(conn: AsyncConnection, pid: int) -> Grantor | None:
    """The grantor an earlier version of this source resource was written with (None: none)."""
    row = (
        await conn.execute(
            select(care_source.c.grantor_kind, care_source.c.grantor).where(care_source.c.source_pid == pid).limit(1)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def _subject(res: dict[str, Any], base: str | None) -> str | None:
    """The local Patient a care-relation source is about (None: external or none)."""
    ref = res.get("for") if res.get("resourceType") == "Task" else res.get("subject")
    return local_id(ref, "Patient", base)


async def _derive(
    conn: AsyncConnection,
    pid: int,
    res_type: str,
    resource: dict[str, Any] | None,
    *,
    fresh: bool = False,
    base: str | None = None,
    grantor: Grantor | None = None,
    client_key: str | None = None,
) -> set[str]:
    """Replace the facts one source resource implies; returns the patients concerned. A ``fresh``
    resource (its first version) implied nothing before. Care relations need a ``grantor``.
    ``client_key``: the resource's client key, when the caller knows it (else it is read)."""
    patients = set() if fresh else set(await _forget(conn, pid))
    if resource is not None:
        if res_type == "Consent":
            # (A delegation's change moves the rights of relations its delegate arranged.)
            patient = local_id(resource.get("patient"), "Patient", base)
            if patient is not None and not fresh:
                patients.add(patient)
            patients |= await _derive_consent(conn, pid, resource, base)
        elif grantor is not None:
            concerned, relations = await _derive_relations(conn, pid, resource, base, grantor)
            await _write_source(conn, pid, grantor, relations, client_key)
            patients |= concerned
    return patients


def _source_and_relations(source: str) -> Any:
    """A care-relation source's ``care_source`` row (its values: ``source``) and its relations in
    one statement (PostgreSQL)."""
    return text(
        f"WITH s AS (INSERT INTO care_source (source_pid, grantor_kind, grantor, client_key) {source}) "  # noqa: S608
        'INSERT INTO care_relation (source_pid, patient_id, org_ura, start, "end", grantor_kind, grantor) '
        "SELECT :pid, :patient, u.ura, u.lo, u.hi, :kind, :grantor "
        "FROM unnest(CAST(:uras AS text[]), CAST(:los AS bigint[]), CAST(:his AS bigint[])) AS u(ura, lo, hi)"
    ).bindparams(
        bindparam("pid", type_=BigInteger()),
        bindparam("kind", type_=String()),
        bindparam("grantor", type_=String()),
        bindparam("patient", type_=String()),
        bindparam("uras", type_=ARRAY(Text())),
        bindparam("los", type_=ARRAY(BigInteger())),
        bindparam("his", type_=ARRAY(BigInteger())),
    )


#: The client key read from the source's row; or given (a source waiting to be written with the
#: Bundle's other creates then stays waiting: the statement reads none of them, hub.store.pg_batch).
#: (Both on the driver connection: hub.store.direct.)
_SOURCE_AND_RELATIONS = InTransaction(
    _source_and_relations("SELECT pid, :kind, :grantor, client_key FROM resource WHERE pid = :pid")
)
_SOURCE_AND_RELATIONS_KEYED = InTransaction(
    _source_and_relations("VALUES (:pid, :kind, :grantor, :client_key)")
    .bindparams(bindparam("client_key", type_=String()))
    .execution_options(**{pg_batch.READS: frozenset()})
)


async def _write_source(
    conn: AsyncConnection,
    pid: int,
    grantor: Grantor,
    relations: list[dict[str, Any]],
    client_key: str | None = None,
) -> None:
    """Record who wrote care-relation source ``pid`` and the relations it implies (rows of one
    patient and grantor, from :func:`_derive_relations`): one statement on PostgreSQL (``client_key``:
    the source's, when known)."""
    if conn.dialect.name == "postgresql":  # (no relations: the source's row alone)
        params = {
            "pid": pid,
            "kind": grantor[0],
            "grantor": grantor[1],
            "patient": relations[0]["patient_id"] if relations else "",
            "uras": [r["org_ura"] for r in relations],
            "los": [r["start"] for r in relations],
            "his": [r["end"] for r in relations],
        }
        if client_key is None:
            await _SOURCE_AND_RELATIONS.execute(conn, params)
        else:
            await _SOURCE_AND_RELATIONS_KEYED.execute(conn, {**params, "client_key": client_key})
        return
    await conn.execute(
        insert(care_source).values(
            source_pid=pid, grantor_kind=grantor[0], grantor=grantor[1], client_key=key_of_resource(pid)
        )
    )
    if relations:
        await conn.execute(insert(care_relation), relations)


async def _rederive_referrers(conn: AsyncConnection, res_type: str, res_id: str, base: str | None) -> None:
    """Derive again every source resource that references ``res_type/res_id`` (for an
    Organization, also through the PractitionerRoles that reference it)."""
    targets = [(res_type, res_id)]
    if res_type == "Organization":
        roles = (
            await conn.execute(
                select(resource.c.res_id)
                .select_from(idx_reference.join(resource, resource.c.pid == idx_reference.c.pid))
                .where(
                    idx_reference.c.res_type == "PractitionerRole",
                    idx_reference.c.param == "organization",
                    idx_reference.c.target_type == "Organization",
                    idx_reference.c.target_id == res_id,
                    resource.c.deleted == false(),
                )
            )
        ).all()
        targets += [("PractitionerRole", r[0]) for r in roles]
    conds = [and_(idx_reference.c.target_type == t, idx_reference.c.target_id == i) for t, i in targets]
    rows = (
        await conn.execute(
            select(resource.c.pid, resource.c.res_type, resource.c.content).where(
                resource.c.pid.in_(
                    select(idx_reference.c.pid).where(idx_reference.c.res_type.in_(SOURCE_TYPES), or_(*conds))
                ),
                resource.c.deleted == false(),
            )
        )
    ).all()
    grantors = (
        {
            r.source_pid: (r.grantor_kind, r.grantor)
            for r in (
                await conn.execute(select(care_source).where(care_source.c.source_pid.in_([r[0] for r in rows])))
            ).all()
        }
        if rows
        else {}
    )
    patients: set[str] = set()
    for pid, source_type, content in rows:
        # The source keeps the grantor of its write (a source that implied nothing yet has none).
        patients |= await _derive(
            conn,
            pid,
            source_type,
            orjson.loads(content) if content else None,
            base=base,
            grantor=grantors.get(pid),
        )
    owe_recompute(conn, patients)


# -- care relationships -------------------------------------------------------------------------


async def _derive_relations(
    conn: AsyncConnection, pid: int, res: dict[str, Any], base: str | None, grantor: Grantor
) -> tuple[set[str], list[dict[str, Any]]]:
    """The patients a source's write concerns, and the care relations it implies (to be written
    with its ``care_source`` row: :func:`_write_source`)."""
    kind = res["resourceType"]
    patient = _subject(res, base)
    if patient is None:
        return set(), []
    refs: list[Any] = []
    start, end = DATE_MIN, DATE_MAX
    if kind == "CareTeam":
        if res.get("status") != "active":
            return set(), []
        start, end = _period(res.get("period"))
        for p in res.get("participant") or []:
            if not isinstance(p, dict):
                continue
            p_start, p_end = _period(p.get("period"))
            for ref in (p.get("onBehalfOf"), p.get("member")):
                if ref is not None:
                    refs.append((ref, max(start, p_start), min(end, p_end)))
    elif kind == "ServiceRequest":
        if res.get("status") != "active":
            return set(), []
        start, end = _period(res.get("occurrencePeriod"))
        refs = [(ref, start, end) for ref in res.get("performer") or []]
    elif kind == "Task":
        if not _has_code(res.get("code"), *OVERDRACHT_CODE) or res.get("status") not in OPEN_TASK_STATES:
            return set(), []
        if not yields_access(res):
            return {patient}, []  # a counterpart outside the hub: no care relation (hub.workflows.overdracht)
        if res.get("owner") is not None:
            refs = [(res["owner"], start, end)]
    rows = []
    uras = await organisation_uras(conn, [ref for ref, _lo, _hi in refs], base)
    for ref, lo, hi in refs:
        ura = uras.get(_ref_key(ref))
        if ura and hi > lo:
            rows.append(
                {
                    "source_pid": pid,
                    "patient_id": patient,
                    "org_ura": ura,
                    "start": lo,
                    "end": hi,
                    "grantor_kind": grantor[0],
                    "grantor": grantor[1],
                }
            )
    return {patient}, _dedupe(rows)


# -- consent ------------------------------------------------------------------------------------


async def _derive_consent(conn: AsyncConnection, pid: int, res: dict[str, Any], base: str | None) -> set[str]:
    if res.get("status") != "active" or not _has_code(
        res.get("scope"), "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"
    ):
        return set()
    patient = local_id(res.get("patient"), "Patient", base)
    if patient is None:
        return set()
    provisions = list(_provisions(res.get("provision"), None))
    if _has_category(res, "delegatie"):
        await _derive_delegations(conn, pid, patient, provisions, base)
        return {patient}
    rows = []
    refs = [a.get("reference") for p in provisions for a in p["actors"] if isinstance(a, dict)]
    uras = await organisation_uras(conn, refs, base)
    for prov in provisions:
        actors: list[tuple[str | None, str | None]] = []
        for actor in prov["actors"]:
            ref = actor.get("reference") if isinstance(actor, dict) else None
            org_type = _identifier_value(ref, ORG_TYPE_SYSTEMS)
            if org_type:
                actors.append((None, org_type))
                continue
            ura = uras.get(_ref_key(ref))
            if ura:
                actors.append((ura, None))
        if prov["actors"] and not actors:
            continue  # names only actors the hub cannot identify: it grants or denies nobody
        for actor_ura, org_type in actors or [(None, None)]:
            for category in prov["categories"] or [None]:
                for purpose in prov["purposes"] or [None]:
                    rows.append(
                        {
                            "source_pid": pid,
                            "patient_id": patient,
                            "decision": prov["type"],
                            "category": category,
                            "actor_ura": actor_ura,
                            "org_type": org_type,
                            "purpose": purpose,
                            "start": prov["start"],
                            "end": prov["end"],
                        }
                    )
    if rows and conn.dialect.name == "postgresql":
        await _INSERT_RULES.execute(conn, {c: [r[c] for r in rows] for c in _RULE_COLUMNS})
    elif rows:
        await conn.execute(insert(consent_rule), rows)
    return {patient}


async def _derive_delegations(
    conn: AsyncConnection, pid: int, patient: str, provisions: list[dict[str, Any]], base: str | None
) -> None:
    bsn = await patient_bsn(conn, patient)
    if bsn is None:
        return
    rows = []
    for prov in provisions:
        if prov["type"] != "permit":
            continue
        for actor in prov["actors"]:
            ref = actor.get("reference") if isinstance(actor, dict) else None
            person, role = await _person(conn, ref, base)
            if person:
                rows.append(
                    {
                        "person_id": person,
                        "patient_bsn": bsn,
                        "role_code": role or "100001",
                        "categories": orjson.dumps(sorted(set(prov["categories"]))).decode(),
                        "period_start": None if prov["start"] == DATE_MIN else prov["start"],
                        "period_end": None if prov["end"] == DATE_MAX else prov["end"],
                        "active": True,
                        "source_pid": pid,
                        "client_key": patient,
                    }
                )
    if rows:
        await conn.execute(insert(delegation), rows)


def _provisions(node: Any, parent: dict[str, Any] | None) -> Iterable[dict[str, Any]]:
    """Flatten nested provisions, each inheriting what its parent said and it does not."""
    if not isinstance(node, dict):
        return
    start, end = _period(node.get("period"))
    if parent is not None:
        start, end = max(start, parent["start"]), min(end, parent["end"])
    codes = [c for cc in node.get("code") or [] for c in _codes(cc, DATA_CATEGORY_SYSTEM)]
    purposes = [p.get("code") for p in node.get("purpose") or [] if isinstance(p, dict) and p.get("code")]
    flat = {
        "type": node.get("type") or (parent["type"] if parent else "permit"),
        "start": start,
        "end": end,
        "actors": node.get("actor") or (parent["actors"] if parent else []),
        "categories": codes or (parent["categories"] if parent else []),
        "purposes": purposes or (parent["purposes"] if parent else []),
    }
    if node.get("type") or parent is None:
        yield flat
    for child in node.get("provision") or []:
        yield from _provisions(child, flat)


# -- recomputing grants -------------------------------------------------------------------------


async def recompute(conn: AsyncConnection, patients: Iterable[str]) -> None:
    """Rewrite ``access_grant`` for these patients from their current relations and rules."""
    patients = sorted(set(patients))
    if not patients:
        return
    inputs = await grant_inputs.read(conn, patients)
    rel_rows, rule_rows, types = inputs.relations, inputs.rules, inputs.types
    _set_effective(patients, inputs)
    rows = []
    for patient in patients:
        relations = [
            Relation(r["org_ura"], r["eff_start"], r["eff_end"])
            for r in rel_rows
            if r["patient_id"] == patient and r["eff_start"] is not None
        ]
        rules = [
            Rule(r["decision"], r["category"], r["actor_ura"], r["org_type"], r["purpose"], r["start"], r["end"])
            for r in rule_rows
            if r["patient_id"] == patient
        ]
        for ura, category, start, end in grant_intervals(relations, rules, types):
            rows.append({"patient_id": patient, "org_ura": ura, "category": category, "start": start, "end": end})
    await _replace(conn, patients, rel_rows, rows)


async def _replace(
    conn: AsyncConnection, patients: list[str], relations: list[dict[str, Any]], grants: list[dict[str, Any]]
) -> None:
    """Store the patients' relations (with the effective intervals :func:`_set_effective` set) and
    grants in place of theirs: one statement on PostgreSQL, four elsewhere. (Relations are rewritten
    only when the patients have any: with none, there is nothing of theirs to replace.)"""
    if conn.dialect.name == "postgresql":
        params: dict[str, Any] = {
            "rel_patients": patients if relations else [],
            "patients": patients,
            **{f"r_{c}": [r[c] for r in relations] for c in _RELATION_COLUMNS},
            **{f"g_{c}": [g[c] for g in grants] for c in _GRANT_COLUMNS},
        }
        await _REPLACE.execute(conn, params)
        return
    if relations:
        await conn.execute(_FORGET_RELATIONS, {"patients": patients})
        await conn.execute(_INSERT_RELATION, relations)
    await conn.execute(_FORGET_GRANTS, {"patients": patients})
    if grants:
        await conn.execute(_INSERT_GRANT, grants)


# The statements of a recompute, built once (built per call, building them cost more than running them).
_FORGET_GRANTS = delete(access_grant).where(access_grant.c.patient_id.in_(bindparam("patients", expanding=True)))
_INSERT_GRANT = insert(access_grant)
_FORGET_RELATIONS = delete(care_relation).where(care_relation.c.patient_id.in_(bindparam("patients", expanding=True)))
_INSERT_RELATION = insert(care_relation)
_RELATION_COLUMNS = [c.name for c in care_relation.c]
_GRANT_COLUMNS = [c.name for c in access_grant.c]


def _arrays(prefix: str, table: Any) -> tuple[str, list[Any]]:
    """An array parameter per column of ``table`` (``:<prefix><column>``), cast for ``unnest``, and their binds."""
    casts, binds = [], []
    for c in table.c:
        big = isinstance(c.type, BigInteger)
        casts.append(f"CAST(:{prefix}{c.name} AS {'bigint[]' if big else 'text[]'})")
        binds.append(bindparam(f"{prefix}{c.name}", type_=ARRAY(BigInteger() if big else Text())))
    return ", ".join(casts), binds


def _replace_statement() -> Any:
    """:func:`_replace` on PostgreSQL: both tables' old rows deleted and new rows inserted (from arrays)."""
    rel_arrays, rel_binds = _arrays("r_", care_relation)
    grant_arrays, grant_binds = _arrays("g_", access_grant)
    rel_cols = ", ".join(f'"{c}"' for c in _RELATION_COLUMNS)
    grant_cols = ", ".join(f'"{c}"' for c in _GRANT_COLUMNS)
    forget = (
        "WITH dr AS (DELETE FROM care_relation WHERE patient_id = ANY(CAST(:rel_patients AS text[]))), "
        "dg AS (DELETE FROM access_grant WHERE patient_id = ANY(CAST(:patients AS text[]))), "
    )
    # (the tables' own column names; values are bound)
    relations = f"ir AS (INSERT INTO care_relation ({rel_cols}) SELECT * FROM unnest({rel_arrays})) "  # noqa: S608
    grants = f"INSERT INTO access_grant ({grant_cols}) SELECT * FROM unnest({grant_arrays})"  # noqa: S608
    sql = forget + relations + grants
    return text(sql).bindparams(
        bindparam("rel_patients", type_=ARRAY(Text())),
        bindparam("patients", type_=ARRAY(Text())),
        *rel_binds,
        *grant_binds,
    )


_REPLACE = InTransaction(_replace_statement())


def _insert_rules_statement() -> Any:
    """:func:`_derive_consent`'s rules inserted from arrays (PostgreSQL: one statement, any number of rows)."""
    arrays, binds = _arrays("", consent_rule)
    cols = ", ".join(f'"{c}"' for c in _RULE_COLUMNS)
    return text(f"INSERT INTO consent_rule ({cols}) SELECT * FROM unnest({arrays})").bindparams(*binds)  # noqa: S608


_RULE_COLUMNS = [c.name for c in consent_rule.c]
_INSERT_RULES = InTransaction(_insert_rules_statement())


def _set_effective(patients: list[str], inputs: grant_inputs.GrantInputs) -> None:
    """Set each relation's effective interval (``eff_start``/``eff_end``, in place in
    ``inputs.relations``; the caller stores them): its own period, within the time its grantor's
    own right holds."""
    rows = inputs.relations
    if not rows:
        return
    bsns, registrars = inputs.bsns, inputs.registrars
    legal: dict[tuple[str, str], tuple[int, int]] = {}
    for person_id, patient_bsn, role_code, start, end in inputs.delegations:
        if role_code not in LEGAL_ROLES:
            continue
        lo = start if start is not None else DATE_MIN
        hi = end if end is not None else DATE_MAX
        key = (person_id, patient_bsn)
        old = legal.get(key)
        legal[key] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)
    for patient in patients:
        mine = [r for r in rows if r["patient_id"] == patient]
        eff: dict[int, tuple[int, int] | None] = {}
        for i, r in enumerate(mine):
            kind = r["grantor_kind"]
            span: tuple[int, int] | None = None
            if kind in ROOT_GRANTORS:
                span = (r["start"], r["end"])
            elif kind == "person":
                right = legal.get((r["grantor"] or "", bsns.get(patient) or ""))
                span = _clip((r["start"], r["end"]), right)
            elif kind == "org" and r["grantor"] in registrars.get(patient, ()):
                span = (r["start"], r["end"])
            eff[i] = span
        # Relations granted by organisations hold while the granting organisation is in care:
        # grow from the entitled ones until nothing changes (a ring of organisations vouching for
        # each other, with no entitled party behind it, never holds).
        for _round in range(len(mine) + 1):
            changed = False
            for i, r in enumerate(mine):
                if r["grantor_kind"] != "org" or r["grantor"] in registrars.get(patient, ()):
                    continue
                spans = [s for j, s in eff.items() if s is not None and mine[j]["org_ura"] == r["grantor"]]
                right = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
                new = _clip((r["start"], r["end"]), right)
                if new != eff[i]:
                    eff[i], changed = new, True
            if not changed:
                break
        for i, r in enumerate(mine):
            span = eff[i]
            r["eff_start"], r["eff_end"] = span if span is not None else (None, None)


def _clip(span: tuple[int, int], right: tuple[int, int] | None) -> tuple[int, int] | None:
    if right is None:
        return None
    lo, hi = max(span[0], right[0]), min(span[1], right[1])
    return (lo, hi) if hi > lo else None


#: :func:`_forget` in one statement (PostgreSQL): the patients and BSNs the deleted rows concerned.
_FORGET = text(
    "WITH a AS (DELETE FROM care_relation WHERE source_pid = :pid RETURNING patient_id), "
    "b AS (DELETE FROM consent_rule WHERE source_pid = :pid RETURNING patient_id), "
    "c AS (DELETE FROM delegation WHERE source_pid = :pid RETURNING patient_bsn), "
    "d AS (DELETE FROM care_source WHERE source_pid = :pid) "
    "SELECT 'p', patient_id FROM a UNION SELECT 'p', patient_id FROM b UNION SELECT 'b', patient_bsn FROM c"
).bindparams(bindparam("pid", type_=BigInteger()))


async def _forget(conn: AsyncConnection, pid: int) -> list[str]:
    """Drop the facts a resource implied; returns the patients they concerned (each table's rows
    deleted and named in one statement: ``DELETE ... RETURNING``; all four in one on PostgreSQL)."""
    patients: set[str] = set()
    bsns: set[str] = set()
    if conn.dialect.name == "postgresql":
        for kind, value in (await conn.execute(_FORGET, {"pid": pid})).all():
            (patients if kind == "p" else bsns).add(value)
    else:
        for table in (care_relation, consent_rule):
            patients |= {
                r[0]
                for r in (
                    await conn.execute(delete(table).where(table.c.source_pid == pid).returning(table.c.patient_id))
                ).all()
            }
        bsns = {
            r[0]
            for r in (
                await conn.execute(
                    delete(delegation).where(delegation.c.source_pid == pid).returning(delegation.c.patient_bsn)
                )
            ).all()
        }
        await conn.execute(delete(care_source).where(care_source.c.source_pid == pid))
    for ids in (await patient_ids_for_bsn(conn, sorted(bsns))).values():
        patients |= set(ids)
    return sorted(patients)


# -- lookups ------------------------------------------------------------------------------------


def _ref_key(ref: Any) -> str:
    """A hashable key for a Reference (its identifier or its literal reference)."""
    if not isinstance(ref, dict):
        return ""
    ident = ref.get("identifier")
    if isinstance(ident, dict):
        return f"{ident.get('system')}|{ident.get('value')}"
    return str(ref.get("reference", ""))


async def organisation_uras(conn: AsyncConnection, refs: list[Any], base: str | None = None) -> dict[str, str]:
    """:func:`organisation_ura` for many references in at most two statements (by ref key); only
    references to resources on this hub are followed."""
    out: dict[str, str] = {}
    orgs: dict[str, str] = {}  # Organization id -> ref key
    roles: dict[str, str] = {}  # PractitionerRole id -> ref key
    # (type, id) -> the URA found earlier in this write transaction, None: none; cleared by every
    # write of an Organization or PractitionerRole (after_write).
    known = deferred.memo(conn, URA_MEMO)
    for ref in refs:
        key = _ref_key(ref)
        ura = _identifier_value(ref, {URA_SYSTEM})
        if ura:
            out[key] = ura
            continue
        target = resolve(ref, base)
        res_type, res_id = target.res_type, target.res_id
        if res_id is None:
            continue
        if known is not None and (res_type, res_id) in known:
            remembered = known[(res_type, res_id)]
            if remembered is not None:  # (None: it has no URA)
                out.setdefault(key, remembered)
        elif res_type == "Organization":
            orgs[res_id] = key
        elif res_type == "PractitionerRole":
            roles[res_id] = key
    if orgs:
        rows = await _ORGANISATION_URAS.fetch(conn, {"ids": sorted(orgs)})
        for res_id, code in rows:
            if known is not None:
                known.setdefault(("Organization", res_id), code)
            out.setdefault(orgs[res_id], code)
        if known is not None:
            for res_id in orgs:
                known.setdefault(("Organization", res_id), None)
    if roles:
        rows = await _ROLE_URAS.fetch(conn, {"ids": sorted(roles)})
        for res_id, code in rows:
            if known is not None:
                known.setdefault(("PractitionerRole", res_id), code)
            out.setdefault(roles[res_id], code)
        if known is not None:
            for res_id in roles:
                known.setdefault(("PractitionerRole", res_id), None)
    return out


def _role_uras() -> Any:
    role = resource.alias("role")
    org = resource.alias("org")
    token = idx_token
    return (
        select(role.c.res_id, token.c.code)
        .select_from(
            role.join(
                idx_reference,
                and_(
                    idx_reference.c.pid == role.c.pid,
                    idx_reference.c.param == "organization",
                    idx_reference.c.target_type == "Organization",
                ),
            )
            .join(org, and_(org.c.res_type == "Organization", org.c.res_id == idx_reference.c.target_id))
            .join(
                token,
                and_(token.c.pid == org.c.pid, token.c.param == "identifier", token.c.system == URA_SYSTEM),
            )
        )
        .where(
            role.c.res_type == "PractitionerRole",
            role.c.res_id.in_(bindparam("ids", expanding=True)),
            role.c.deleted == false(),
            org.c.deleted == false(),
        )
        .execution_options(**{pg_batch.READS: frozenset({"PractitionerRole", "Organization"})})
    )


# organisation_uras' statements, built once (on the driver connection: hub.store.direct).
_ORGANISATION_URAS = InTransaction(
    select(resource.c.res_id, idx_token.c.code)
    .select_from(idx_token.join(resource, resource.c.pid == idx_token.c.pid))
    .where(
        resource.c.res_type == "Organization",
        resource.c.res_id.in_(bindparam("ids", expanding=True)),
        resource.c.deleted == false(),
        idx_token.c.param == "identifier",
        idx_token.c.system == URA_SYSTEM,
    )
    .execution_options(**{pg_batch.READS: frozenset({"Organization"})})
)
_ROLE_URAS = InTransaction(_role_uras())


async def organisation_ura(conn: AsyncConnection, ref: Any, base: str | None = None) -> str | None:
    """The URA of the organisation a reference names (directly, via a PractitionerRole, or by identifier)."""
    return (await organisation_uras(conn, [ref], base)).get(_ref_key(ref))


async def patient_bsn(conn: AsyncConnection, patient_id: str) -> str | None:
    """The BSN of one Patient (None: it has none): :func:`patient_bsns` of one."""
    return (await patient_bsns(conn, [patient_id])).get(patient_id)


async def patient_ids_for_bsn(conn: AsyncConnection, bsns: Iterable[str]) -> dict[str, list[str]]:
    """Patient resource ids carrying each BSN (normally one)."""
    return await patients_by_identifier(conn, BSN_SYSTEM, bsns)


async def _person(conn: AsyncConnection, ref: Any, base: str | None = None) -> tuple[str | None, str | None]:
    """(person id, relationship code) for a delegatee reference (RelatedPerson or identifier)."""
    if not isinstance(ref, dict):
        return None, None
    person = _identifier_value(ref, {PERSON_SYSTEM})
    if person:
        return person, None
    related_id = local_id(ref, "RelatedPerson", base)
    if related_id is None:
        return None, None
    row = (
        await conn.execute(
            select(resource.c.content).where(
                resource.c.res_type == "RelatedPerson", resource.c.res_id == related_id, resource.c.deleted == false()
            )
        )
    ).first()
    if row is None or row[0] is None:
        return None, None
    related = orjson.loads(row[0])
    person = _identifier(related, PERSON_SYSTEM)
    role = None
    for rel in related.get("relationship") or []:
        for coding in rel.get("coding") or []:
            if coding.get("code"):
                role = coding["code"]
                break
    return person, role


# -- small JSON helpers -------------------------------------------------------------------------


def _period(period: Any) -> tuple[int, int]:
    if not isinstance(period, dict):
        return DATE_MIN, DATE_MAX
    try:
        start = date_range(period["start"])[0] if isinstance(period.get("start"), str) else DATE_MIN
        end = date_range(period["end"])[1] + 1 if isinstance(period.get("end"), str) else DATE_MAX
    except BadRequest:
        return DATE_MIN, DATE_MIN  # a malformed period grants nothing
    return start, end


def _codes(concept: Any, system: str) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [c["code"] for c in concept.get("coding") or [] if c.get("system") == system and c.get("code")]


def _has_code(concept: Any, system: str, code: str) -> bool:
    concepts = concept if isinstance(concept, list) else [concept]
    return any(code in _codes(c, system) for c in concepts)


def _has_category(res: dict[str, Any], code: str) -> bool:
    return _has_code(res.get("category") or [], CONSENT_CATEGORY_SYSTEM, code)


def new_organisation_without_ura(stored: Stored, resource: dict[str, Any] | None) -> bool:
    """A first version of an Organization with no URA: a reference to it (or through a
    PractitionerRole to it) names no organisation (:func:`organisation_uras`), as it did before it
    existed, so nothing derived from such references changes."""
    return (
        stored.res_type == "Organization"
        and stored.version == 1
        and resource is not None
        and not _identifier(resource, URA_SYSTEM)
    )


def organisation_without_ura(stored: Stored, resource: dict[str, Any] | None, replaced: Stored | None) -> bool:
    """:func:`new_organisation_without_ura`, or a write of an Organization (an update or a deletion)
    that names no URA and replaces a version that named none (or a deletion, or nothing): a
    reference to it names no organisation before and after, so nothing derived from such references
    changes. (The replaced version's content is only searched for the URA system: any mention of it
    counts as a URA, so a doubtful case derives again.)"""
    if new_organisation_without_ura(stored, resource):
        return True
    if stored.res_type != "Organization" or replaced is None or replaced.res_type != "Organization":
        return False
    if resource is not None and _identifier(resource, URA_SYSTEM):
        return False
    return replaced.deleted or replaced.content is None or URA_SYSTEM not in replaced.content


def _identifier(res: dict[str, Any], system: str) -> str | None:
    for ident in res.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def _identifier_value(ref: Any, systems: set[str] | frozenset[str]) -> str | None:
    if not isinstance(ref, dict):
        return None
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("system") in systems and ident.get("value"):
        return str(ident["value"])
    return None


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = set()
    out = []
    for row in rows:
        key = tuple(sorted(row.items()))
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out
