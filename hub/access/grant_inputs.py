"""What a recompute of access grants reads (:func:`hub.access.facts.recompute`): the patients' care
relations and consent rules, and what weighs their relations' grantors (the patients' BSNs, the
legal representatives' delegations, the organisations that registered the patients) and the
relations' organisation types.

Six lookups, each its own statement (:func:`read_general`, every database); on PostgreSQL they are
one statement (:func:`read_one_statement`): a recompute runs for every client a write transaction
touches (an ingest Bundle, then its client's Consent), and its lookups were two thirds of its
statements. tests/store/test_grant_inputs.py holds both to the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Text, bindparam, select, text, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.tables import care_relation, consent_rule, delegation, organisation, resource_author
from hub.fhir.validation.bsn import BSN_SYSTEM
from hub.store.direct import InTransaction
from hub.store.tables import idx_token, resource

#: A delegation as the grantors' weighing reads it: (person id, patient BSN, role code, start, end).
Delegation = tuple[str, str, str, int | None, int | None]


@dataclass(slots=True)
class GrantInputs:
    """The rows a recompute of ``patients`` starts from (lookups about relations are left empty
    when the patients have none: nothing asks for them)."""

    relations: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    bsns: dict[str, str] = field(default_factory=dict)
    delegations: list[Delegation] = field(default_factory=list)
    registrars: dict[str, set[str]] = field(default_factory=dict)
    types: dict[str, frozenset[str]] = field(default_factory=dict)


async def read(conn: AsyncConnection, patients: list[str]) -> GrantInputs:
    """The inputs of a recompute of ``patients`` (sorted, distinct)."""
    if conn.dialect.name == "postgresql":
        return await read_one_statement(conn, patients)
    return await read_general(conn, patients)


async def read_general(conn: AsyncConnection, patients: list[str]) -> GrantInputs:
    """One statement per lookup (every database)."""
    relations = [dict(r) for r in (await conn.execute(_RELATIONS_OF, {"patients": patients})).mappings().all()]
    inputs = GrantInputs(relations, [])
    if relations:
        inputs.bsns = await patient_bsns(conn, patients)
        persons = sorted(_persons(relations))
        if persons:
            inputs.delegations = [
                (d.person_id, d.patient_bsn, d.role_code, d.period_start, d.period_end)
                for d in (await conn.execute(_LEGAL_DELEGATIONS, {"persons": persons})).all()
            ]
        for res_id, ura in (await conn.execute(_REGISTRARS, {"patients": patients})).all():
            inputs.registrars.setdefault(res_id, set()).add(ura)
    inputs.rules = [dict(r) for r in (await conn.execute(_RULES_OF, {"patients": patients})).mappings().all()]
    inputs.types = await organisation_types(conn, {r["org_ura"] for r in relations})
    return inputs


async def read_one_statement(conn: AsyncConnection, patients: list[str]) -> GrantInputs:
    """Every lookup in one statement (PostgreSQL): each as a JSON array of its rows."""
    row = (await _ALL_IN_ONE.fetch(conn, {"patients": patients, "bsn_system": BSN_SYSTEM}))[0]
    relations, bsns, delegations, registrars, rules, types = (orjson.loads(v) if v else [] for v in row)
    inputs = GrantInputs(relations, rules)
    for res_id, code in bsns:
        inputs.bsns.setdefault(res_id, str(code))
    inputs.delegations = [(p, b, r, lo, hi) for p, b, r, lo, hi in delegations]
    for res_id, ura in registrars:
        inputs.registrars.setdefault(res_id, set()).add(ura)
    inputs.types = _types(types)
    return inputs


def _persons(relations: list[dict[str, Any]]) -> set[str]:
    """The persons (legal representatives) who granted any of these relations."""
    return {r["grantor"] for r in relations if r["grantor_kind"] == "person" and r["grantor"]}


async def organisation_types(conn: AsyncConnection, uras: Iterable[str]) -> dict[str, frozenset[str]]:
    """Organisation type codes by URA, from the administrators' registry (active organisations
    only); an Organization resource claiming a type is not evidence of it."""
    uras = sorted(set(uras))
    if not uras:
        return {}
    return _types((await conn.execute(_ORGANISATION_TYPES, {"uras": uras})).all())


def _types(rows: Iterable[Any]) -> dict[str, frozenset[str]]:
    """(URA, JSON array of type codes) rows -> the codes by URA (an organisation without any is left out)."""
    out: dict[str, frozenset[str]] = {}
    for ura, types in rows:
        codes = orjson.loads(types or "[]")
        if codes:
            out[ura] = frozenset(str(c) for c in codes)
    return out


async def patient_bsns(conn: AsyncConnection, patient_ids: Iterable[str]) -> dict[str, str]:
    """The BSN of each of these patients, in one statement (a patient without one is left out)."""
    ids = sorted(set(patient_ids))
    if not ids:
        return {}
    rows = (await conn.execute(_PATIENT_BSNS, {"ids": ids})).all()
    out: dict[str, str] = {}
    for res_id, code in rows:
        out.setdefault(res_id, str(code))
    return out


# The general statements, built once (built per call, building them cost more than running them).
_RELATIONS_OF = select(care_relation).where(care_relation.c.patient_id.in_(bindparam("patients", expanding=True)))
_RULES_OF = select(consent_rule).where(consent_rule.c.patient_id.in_(bindparam("patients", expanding=True)))
_LEGAL_DELEGATIONS = select(
    delegation.c.person_id,
    delegation.c.patient_bsn,
    delegation.c.role_code,
    delegation.c.period_start,
    delegation.c.period_end,
).where(delegation.c.person_id.in_(bindparam("persons", expanding=True)), delegation.c.active == true())
_REGISTRARS = (
    select(resource.c.res_id, resource_author.c.ura)
    .select_from(resource_author.join(resource, resource.c.pid == resource_author.c.pid))
    .where(resource.c.res_type == "Patient", resource.c.res_id.in_(bindparam("patients", expanding=True)))
)
_ORGANISATION_TYPES = select(organisation.c.ura, organisation.c.types).where(
    organisation.c.ura.in_(bindparam("uras", expanding=True)), organisation.c.active == true()
)
_PATIENT_BSNS = (
    select(resource.c.res_id, idx_token.c.code)
    .select_from(idx_token.join(resource, resource.c.pid == idx_token.c.pid))
    .where(
        resource.c.res_type == "Patient",
        resource.c.res_id.in_(bindparam("ids", expanding=True)),
        idx_token.c.param == "identifier",
        idx_token.c.system == BSN_SYSTEM,
    )
)

#: The same six lookups as one statement (PostgreSQL); those about relations only when there are any.
#: (On the driver connection: hub.store.direct.)
_ALL_IN_ONE = InTransaction(
    text(
        "WITH p AS (SELECT unnest(CAST(:patients AS text[])) AS id), "
        "rel AS (SELECT * FROM care_relation WHERE patient_id IN (SELECT id FROM p)) "
        "SELECT (SELECT CAST(json_agg(rel) AS text) FROM rel), "
        "(SELECT CAST(json_agg(json_build_array(r.res_id, t.code)) AS text) "
        " FROM idx_token t JOIN resource r ON r.pid = t.pid "
        " WHERE r.res_type = 'Patient' AND r.res_id IN (SELECT id FROM p) AND t.param = 'identifier' "
        " AND t.system = :bsn_system AND EXISTS (SELECT 1 FROM rel)), "
        "(SELECT CAST(json_agg(json_build_array(d.person_id, d.patient_bsn, d.role_code, d.period_start, d.period_end))"
        " AS text) FROM delegation d WHERE d.active AND d.person_id IN "
        " (SELECT grantor FROM rel WHERE grantor_kind = 'person' AND grantor <> '')), "
        "(SELECT CAST(json_agg(json_build_array(r.res_id, a.ura)) AS text) "
        " FROM resource_author a JOIN resource r ON r.pid = a.pid "
        " WHERE r.res_type = 'Patient' AND r.res_id IN (SELECT id FROM p) AND EXISTS (SELECT 1 FROM rel)), "
        "(SELECT CAST(json_agg(c) AS text) FROM consent_rule c WHERE c.patient_id IN (SELECT id FROM p)), "
        "(SELECT CAST(json_agg(json_build_array(o.ura, o.types)) AS text) FROM organisation o "
        " WHERE o.active AND o.ura IN (SELECT org_ura FROM rel))"
    ).bindparams(bindparam("patients", type_=ARRAY(Text())), bindparam("bsn_system", type_=Text()))
)


__all__ = [
    "Delegation",
    "GrantInputs",
    "organisation_types",
    "patient_bsns",
    "read",
    "read_general",
    "read_one_statement",
]
