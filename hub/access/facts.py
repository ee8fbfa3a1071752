"""Keeping the derived access facts up to date, in the transaction of the write that implies them.

A write of a CareTeam, ServiceRequest or overdracht Task rewrites the care relationships it
implies; a write of a privacy Consent rewrites its rules (and, for a delegation Consent, the
delegation rows); an Organization write can change an organisation's type. Each then recomputes the
``access_grant`` rows of the patients concerned (:mod:`hub.access.grants`), so a withdrawn consent
or an ended care relationship takes effect on the very next request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import and_, delete, false, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.grants import Relation, Rule, grant_intervals
from hub.access.tables import access_grant, care_relation, consent_rule, delegation, resource_author
from hub.fhir.errors import BadRequest
from hub.fhir.normalize import date_range
from hub.store.resources import Stored
from hub.store.tables import DATE_MAX, DATE_MIN, idx_reference, idx_token, resource
from hub.workflows.overdracht import CARE_STATES, yields_access

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
ORG_TYPE_SYSTEMS = frozenset({
    "http://nictiz.nl/fhir/NamingSystem/organization-type",
    "urn:oid:2.16.840.1.113883.2.4.15.1060",
})
PERSON_SYSTEM = "https://zorgnet-hub.nl/fhir/NamingSystem/person-id"
CONSENT_CATEGORY_SYSTEM = "https://zorgnet-hub.nl/fhir/CodeSystem/consent-category"
DATA_CATEGORY_SYSTEM = "https://zorgnet-hub.nl/fhir/CodeSystem/data-category"
OVERDRACHT_CODE = ("http://snomed.info/sct", "308292007")
#: Task states in which the receiving organisation takes part in the client's care (before that,
#: what it reads follows the Task's state: hub.workflows).
OPEN_TASK_STATES = CARE_STATES

DERIVING_TYPES = frozenset({"CareTeam", "ServiceRequest", "Task", "Consent", "Organization", "PractitionerRole"})
#: The types whose content implies care relations or consent rules.
SOURCE_TYPES = ("CareTeam", "ServiceRequest", "Task", "Consent")


async def after_write(
    conn: AsyncConnection, stored: Stored, resource: dict[str, Any] | None, author_ura: str | None
) -> None:
    """Maintain the facts a write implies (``resource`` None for a delete)."""
    if author_ura and resource is not None:
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        await conn.execute(
            dialect_insert(resource_author).values(pid=stored.pid, ura=author_ura).on_conflict_do_nothing()
        )
    if stored.res_type not in DERIVING_TYPES:
        return
    if stored.res_type in ("Organization", "PractitionerRole"):
        # Who an organisation is (its URA, its type) can change what the resources naming it
        # imply, and they may have been written before it: derive those again. (A new
        # Organization without a URA changes nothing.)
        if not (stored.res_type == "Organization" and stored.version == 1 and resource is not None
                and not _identifier(resource, URA_SYSTEM)):
            await _rederive_referrers(conn, stored.res_type, stored.res_id)
        return
    await recompute(conn, await _derive(conn, stored.pid, stored.res_type, resource, fresh=stored.version == 1))


async def _derive(
    conn: AsyncConnection, pid: int, res_type: str, resource: dict[str, Any] | None, *, fresh: bool = False
) -> set[str]:
    """Replace the facts one source resource implies; returns the patients concerned. A ``fresh``
    resource (its first version) implied nothing before."""
    patients = set() if fresh else set(await _forget(conn, pid))
    if resource is not None:
        if res_type == "Consent":
            patients |= await _derive_consent(conn, pid, resource)
        else:
            patients |= await _derive_relations(conn, pid, resource)
    return patients


async def _rederive_referrers(conn: AsyncConnection, res_type: str, res_id: str) -> None:
    """Derive again every source resource that references ``res_type/res_id`` (for an
    Organization, also through the PractitionerRoles that reference it)."""
    targets = [(res_type, res_id)]
    if res_type == "Organization":
        roles = (await conn.execute(
            select(resource.c.res_id)
            .select_from(idx_reference.join(resource, resource.c.pid == idx_reference.c.pid))
            .where(idx_reference.c.res_type == "PractitionerRole", idx_reference.c.param == "organization",
                   idx_reference.c.target_type == "Organization", idx_reference.c.target_id == res_id,
                   resource.c.deleted == false())
        )).all()
        targets += [("PractitionerRole", r[0]) for r in roles]
    conds = [and_(idx_reference.c.target_type == t, idx_reference.c.target_id == i) for t, i in targets]
    rows = (await conn.execute(
        select(resource.c.pid, resource.c.res_type, resource.c.content)
        .where(resource.c.pid.in_(
            select(idx_reference.c.pid).where(idx_reference.c.res_type.in_(SOURCE_TYPES), or_(*conds))
        ), resource.c.deleted == false())
    )).all()
    patients: set[str] = set()
    for pid, source_type, content in rows:
        patients |= await _derive(conn, pid, source_type, orjson.loads(content) if content else None)
    await recompute(conn, patients)


# -- care relationships -------------------------------------------------------------------------


async def _derive_relations(conn: AsyncConnection, pid: int, res: dict[str, Any]) -> set[str]:
    kind = res["resourceType"]
    patient = _local_id(res.get("subject") if kind != "Task" else res.get("for"), "Patient")
    if patient is None:
        return set()
    refs: list[Any] = []
    start, end = DATE_MIN, DATE_MAX
    if kind == "CareTeam":
        if res.get("status") != "active":
            return set()
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
            return set()
        start, end = _period(res.get("occurrencePeriod"))
        refs = [(ref, start, end) for ref in res.get("performer") or []]
    elif kind == "Task":
        if not _has_code(res.get("code"), *OVERDRACHT_CODE) or res.get("status") not in OPEN_TASK_STATES:
            return set()
        if not yields_access(res):
            return {patient}  # a counterpart outside the hub: no care relation (hub.workflows.overdracht)
        if res.get("owner") is not None:
            refs = [(res["owner"], start, end)]
    rows = []
    uras = await organisation_uras(conn, [ref for ref, _lo, _hi in refs])
    for ref, lo, hi in refs:
        ura = uras.get(_ref_key(ref))
        if ura and hi > lo:
            rows.append({"source_pid": pid, "patient_id": patient, "org_ura": ura, "start": lo, "end": hi})
    if rows:
        await conn.execute(insert(care_relation), _dedupe(rows))
    return {patient}


# -- consent ------------------------------------------------------------------------------------


async def _derive_consent(conn: AsyncConnection, pid: int, res: dict[str, Any]) -> set[str]:
    if res.get("status") != "active" or not _has_code(
        res.get("scope"), "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"
    ):
        return set()
    patient = _local_id(res.get("patient"), "Patient")
    if patient is None:
        return set()
    provisions = list(_provisions(res.get("provision"), None))
    if _has_category(res, "delegatie"):
        await _derive_delegations(conn, pid, patient, provisions)
        return {patient}
    rows = []
    refs = [a.get("reference") for p in provisions for a in p["actors"] if isinstance(a, dict)]
    uras = await organisation_uras(conn, refs)
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
                    rows.append({
                        "source_pid": pid, "patient_id": patient, "decision": prov["type"],
                        "category": category, "actor_ura": actor_ura, "org_type": org_type,
                        "purpose": purpose, "start": prov["start"], "end": prov["end"],
                    })
    if rows:
        await conn.execute(insert(consent_rule), rows)
    return {patient}


async def _derive_delegations(
    conn: AsyncConnection, pid: int, patient: str, provisions: list[dict[str, Any]]
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
            person, role = await _person(conn, ref)
            if person:
                rows.append({
                    "person_id": person, "patient_bsn": bsn, "role_code": role or "100001",
                    "categories": orjson.dumps(sorted(set(prov["categories"]))).decode(),
                    "period_start": None if prov["start"] == DATE_MIN else prov["start"],
                    "period_end": None if prov["end"] == DATE_MAX else prov["end"],
                    "active": True, "source_pid": pid,
                })
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
        "start": start, "end": end,
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
    rel_rows = (await conn.execute(
        select(care_relation.c.patient_id, care_relation.c.org_ura, care_relation.c.start, care_relation.c.end)
        .where(care_relation.c.patient_id.in_(patients))
    )).all()
    rule_rows = (await conn.execute(
        select(consent_rule).where(consent_rule.c.patient_id.in_(patients))
    )).mappings().all()
    types = await organisation_types(conn, {r.org_ura for r in rel_rows})
    await conn.execute(delete(access_grant).where(access_grant.c.patient_id.in_(patients)))
    rows = []
    for patient in patients:
        relations = [Relation(r.org_ura, r.start, r.end) for r in rel_rows if r.patient_id == patient]
        rules = [
            Rule(r["decision"], r["category"], r["actor_ura"], r["org_type"], r["purpose"], r["start"], r["end"])
            for r in rule_rows if r["patient_id"] == patient
        ]
        for ura, category, start, end in grant_intervals(relations, rules, types):
            rows.append({"patient_id": patient, "org_ura": ura, "category": category, "start": start, "end": end})
    if rows:
        await conn.execute(insert(access_grant), rows)


async def _forget(conn: AsyncConnection, pid: int) -> list[str]:
    """Drop the facts a resource implied; returns the patients they concerned."""
    patients: set[str] = set()
    for table in (care_relation, consent_rule):
        patients |= {r[0] for r in (await conn.execute(
            select(table.c.patient_id).where(table.c.source_pid == pid).distinct()
        )).all()}
        await conn.execute(delete(table).where(table.c.source_pid == pid))
    await conn.execute(delete(delegation).where(delegation.c.source_pid == pid))
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


async def organisation_uras(conn: AsyncConnection, refs: list[Any]) -> dict[str, str]:
    """:func:`organisation_ura` for many references in at most two statements (by ref key)."""
    out: dict[str, str] = {}
    orgs: dict[str, str] = {}  # Organization id -> ref key
    roles: dict[str, str] = {}  # PractitionerRole id -> ref key
    for ref in refs:
        key = _ref_key(ref)
        ura = _identifier_value(ref, {URA_SYSTEM})
        if ura:
            out[key] = ura
            continue
        reference = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(reference, str) or "/" not in reference:
            continue
        res_type, res_id = reference.split("/_history/")[0].split("/")[-2:]
        if res_type == "Organization":
            orgs[res_id] = key
        elif res_type == "PractitionerRole":
            roles[res_id] = key
    token = idx_token
    if orgs:
        rows = (await conn.execute(
            select(resource.c.res_id, token.c.code)
            .select_from(token.join(resource, resource.c.pid == token.c.pid))
            .where(resource.c.res_type == "Organization", resource.c.res_id.in_(sorted(orgs)),
                   resource.c.deleted == false(), token.c.param == "identifier", token.c.system == URA_SYSTEM)
        )).all()
        for res_id, code in rows:
            out.setdefault(orgs[res_id], code)
    if roles:
        role = resource.alias("role")
        org = resource.alias("org")
        rows = (await conn.execute(
            select(role.c.res_id, token.c.code)
            .select_from(
                role.join(idx_reference, and_(idx_reference.c.pid == role.c.pid,
                                              idx_reference.c.param == "organization",
                                              idx_reference.c.target_type == "Organization"))
                .join(org, and_(org.c.res_type == "Organization", org.c.res_id == idx_reference.c.target_id))
                .join(token, and_(token.c.pid == org.c.pid, token.c.param == "identifier",
                                  token.c.system == URA_SYSTEM))
            )
            .where(role.c.res_type == "PractitionerRole", role.c.res_id.in_(sorted(roles)),
                   role.c.deleted == false(), org.c.deleted == false())
        )).all()
        for res_id, code in rows:
            out.setdefault(roles[res_id], code)
    return out


async def organisation_ura(conn: AsyncConnection, ref: Any) -> str | None:
    """The URA of the organisation a reference names (directly, via a PractitionerRole, or by identifier)."""
    return (await organisation_uras(conn, [ref])).get(_ref_key(ref))


async def organisation_types(conn: AsyncConnection, uras: Iterable[str]) -> dict[str, frozenset[str]]:
    """Organisation type codes by URA (from the Organization resources' ``type``)."""
    uras = sorted(set(uras))
    if not uras:
        return {}
    ident = idx_token.alias("ident")
    kind = idx_token.alias("kind")
    rows = (await conn.execute(
        select(ident.c.code, kind.c.code)
        .select_from(ident.join(kind, and_(kind.c.pid == ident.c.pid, kind.c.param == "type")))
        .where(ident.c.res_type == "Organization", ident.c.param == "identifier",
               ident.c.system == URA_SYSTEM, ident.c.code.in_(uras))
    )).all()
    out: dict[str, set[str]] = {}
    for ura, code in rows:
        if code:
            out.setdefault(ura, set()).add(code)
    return {k: frozenset(v) for k, v in out.items()}


async def patient_bsn(conn: AsyncConnection, patient_id: str) -> str | None:
    row = (await conn.execute(
        select(idx_token.c.code)
        .select_from(idx_token.join(resource, resource.c.pid == idx_token.c.pid))
        .where(resource.c.res_type == "Patient", resource.c.res_id == patient_id,
               idx_token.c.param == "identifier", idx_token.c.system == BSN_SYSTEM)
    )).first()
    return str(row[0]) if row else None


async def patient_ids_for_bsn(conn: AsyncConnection, bsns: Iterable[str]) -> dict[str, list[str]]:
    """Patient resource ids carrying each BSN (normally one)."""
    bsns = sorted(set(bsns))
    if not bsns:
        return {}
    rows = (await conn.execute(
        select(idx_token.c.code, resource.c.res_id)
        .select_from(idx_token.join(resource, resource.c.pid == idx_token.c.pid))
        .where(idx_token.c.res_type == "Patient", idx_token.c.param == "identifier",
               idx_token.c.system == BSN_SYSTEM, idx_token.c.code.in_(bsns), resource.c.deleted == false())
    )).all()
    out: dict[str, list[str]] = {}
    for bsn, res_id in rows:
        out.setdefault(bsn, []).append(res_id)
    return out


async def _person(conn: AsyncConnection, ref: Any) -> tuple[str | None, str | None]:
    """(person id, relationship code) for a delegatee reference (RelatedPerson or identifier)."""
    if not isinstance(ref, dict):
        return None, None
    person = _identifier_value(ref, {PERSON_SYSTEM})
    if person:
        return person, None
    reference = ref.get("reference")
    if not isinstance(reference, str) or not reference.startswith("RelatedPerson/"):
        return None, None
    row = (await conn.execute(
        select(resource.c.content).where(resource.c.res_type == "RelatedPerson",
                                         resource.c.res_id == reference.split("/")[1], resource.c.deleted == false())
    )).first()
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


def _local_id(ref: Any, res_type: str) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        parts = ref["reference"].split("/_history/")[0].split("/")
        if len(parts) >= 2 and parts[-2] == res_type:
            return parts[-1]
    return None


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
