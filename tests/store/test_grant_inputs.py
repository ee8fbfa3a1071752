"""What a recompute of access grants reads (hub/access/grant_inputs.py): on PostgreSQL one
statement, elsewhere one per lookup; both answer the same for every kind of patient (with and
without relations, BSN, registrars, rules; relations granted by an organisation, a legal
representative, a mantelzorger, the hub), also for patients the database does not know."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, insert

from hub.access import grant_inputs
from hub.access.grant_inputs import GrantInputs
from hub.access.tables import care_relation, consent_rule, delegation, organisation, resource_author
from hub.fhir.instants import DATE_MAX, DATE_MIN
from hub.fhir.validation.bsn import BSN_SYSTEM
from hub.store.db import Database
from hub.store.tables import idx_token, resource

#: Patients: p1 (a full network), p2 (relations, no BSN, no registrar), p3 (rules only), p4 (nothing),
#: p5 (deleted Patient, relation kept), and "missing" (no Patient at all).
_PATIENTS = ["missing", "p1", "p2", "p3", "p4", "p5"]


async def _load(db: Database) -> None:
    async with db.write() as conn:
        for pid, res_id, deleted in (
            (1, "p1", False),
            (2, "p2", False),
            (3, "p3", False),
            (4, "p4", False),
            (5, "p5", True),
        ):
            await conn.execute(
                insert(resource).values(
                    pid=pid,
                    res_type="Patient",
                    res_id=res_id,
                    version=1,
                    last_updated=1,
                    deleted=deleted,
                    category="medisch",
                    content=None,
                    client_key=res_id,
                )
            )
        await conn.execute(
            insert(resource).values(
                pid=9, res_type="Observation", res_id="p1", version=1, last_updated=1, content=None, client_key="p1"
            )
        )  # (not a Patient: its author and identifiers name no client)
        token: dict[str, Any] = {"res_type": "Patient", "param": "identifier", "grp": 0}
        await conn.execute(
            insert(idx_token),
            [
                {**token, "pid": 1, "system": BSN_SYSTEM, "code": "999993653", "client_key": "p1"},
                {**token, "pid": 1, "system": "urn:other", "code": "x-1", "client_key": "p1"},
                {**token, "pid": 3, "system": BSN_SYSTEM, "code": "999990019", "client_key": "p3"},
                {**token, "pid": 5, "system": BSN_SYSTEM, "code": "999990020", "client_key": "p5"},
                {**token, "res_type": "Observation", "pid": 9, "system": BSN_SYSTEM, "code": "1", "client_key": "p1"},
            ],
        )
        await conn.execute(
            insert(resource_author),
            [
                {"pid": 1, "ura": "00000001", "client_key": "p1"},
                {"pid": 1, "ura": "00000002", "client_key": "p1"},
                {"pid": 5, "ura": "00000001", "client_key": "p5"},
                {"pid": 9, "ura": "00000009", "client_key": "p1"},
            ],
        )
        rel = {"source_pid": 100, "start": DATE_MIN, "end": DATE_MAX, "eff_start": None, "eff_end": None}
        await conn.execute(
            insert(care_relation),
            [
                {**rel, "patient_id": "p1", "org_ura": "00000001", "grantor_kind": "hub", "grantor": None},
                {**rel, "patient_id": "p1", "org_ura": "00000002", "grantor_kind": "org", "grantor": "00000001"},
                {**rel, "patient_id": "p1", "org_ura": "00000003", "grantor_kind": "person", "grantor": "person-a"},
                {**rel, "patient_id": "p1", "org_ura": "00000004", "grantor_kind": "person", "grantor": "person-b"},
                {**rel, "patient_id": "p1", "org_ura": "00000005", "grantor_kind": "person", "grantor": ""},
                {**rel, "patient_id": "p2", "org_ura": "00000003", "grantor_kind": "org", "grantor": "00000003"},
                {
                    **rel,
                    "patient_id": "p2",
                    "org_ura": "00000006",
                    "start": 10,
                    "end": 20,
                    "grantor_kind": "admin",
                    "grantor": None,
                    "eff_start": 10,
                    "eff_end": 20,
                },
                {**rel, "patient_id": "p5", "org_ura": "00000001", "grantor_kind": "org", "grantor": "00000001"},
                {**rel, "patient_id": "other", "org_ura": "00000007", "grantor_kind": "hub", "grantor": None},
            ],
        )
        dele = {"categories": "[]", "active": True, "source_pid": None, "client_key": "p1"}
        await conn.execute(
            insert(delegation),
            [
                {
                    **dele,
                    "person_id": "person-a",
                    "patient_bsn": "999993653",
                    "role_code": "24",
                    "period_start": None,
                    "period_end": None,
                },
                {
                    **dele,
                    "person_id": "person-a",
                    "patient_bsn": "999993653",
                    "role_code": "100001",
                    "period_start": 5,
                    "period_end": 50,
                },
                {
                    **dele,
                    "person_id": "person-b",
                    "patient_bsn": "999990019",
                    "role_code": "03",
                    "period_start": 7,
                    "period_end": None,
                },
                {
                    **dele,
                    "person_id": "person-b",
                    "patient_bsn": "999993653",
                    "role_code": "24",
                    "active": False,
                    "period_start": None,
                    "period_end": None,
                },
                {
                    **dele,
                    "person_id": "person-c",
                    "patient_bsn": "999993653",
                    "role_code": "24",
                    "period_start": None,
                    "period_end": None,
                },
            ],
        )
        rule = {"source_pid": 200, "category": None, "actor_ura": None, "org_type": None, "purpose": None}
        await conn.execute(
            insert(consent_rule),
            [
                {**rule, "patient_id": "p1", "decision": "permit", "start": DATE_MIN, "end": DATE_MAX},
                {
                    **rule,
                    "patient_id": "p1",
                    "decision": "deny",
                    "category": "medisch",
                    "actor_ura": "00000002",
                    "start": 3,
                    "end": 4,
                },
                {
                    **rule,
                    "patient_id": "p3",
                    "decision": "permit",
                    "org_type": "Z3",
                    "purpose": "TREAT",
                    "start": DATE_MIN,
                    "end": DATE_MAX,
                },
                {**rule, "patient_id": "other", "decision": "permit", "start": DATE_MIN, "end": DATE_MAX},
            ],
        )
        org = {"name": "", "kind": "zorgaanbieder", "created": 1}
        await conn.execute(
            insert(organisation),
            [
                {**org, "ura": "00000001", "types": '["Z3", "A1"]', "active": True},
                {**org, "ura": "00000002", "types": "[]", "active": True},
                {**org, "ura": "00000003", "types": '["Z4"]', "active": False},
                {**org, "ura": "00000006", "types": '["G6"]', "active": True},
                {**org, "ura": "00000007", "types": '["X1"]', "active": True},
            ],
        )


def _comparable(inputs: GrantInputs) -> dict[str, Any]:
    """The inputs with row order left out (neither way promises one)."""

    def rows(values: list[dict[str, Any]]) -> list[tuple[tuple[str, Any], ...]]:
        return sorted((tuple(sorted(r.items())) for r in values), key=repr)

    return {
        "relations": rows(inputs.relations),
        "rules": rows(inputs.rules),
        "bsns": inputs.bsns,
        "delegations": sorted(inputs.delegations, key=repr),
        "registrars": inputs.registrars,
        "types": inputs.types,
    }


async def test_one_statement_reads_what_one_statement_per_lookup_reads(fresh_db: Database) -> None:
    await _load(fresh_db)
    statements: list[str] = []
    engine = fresh_db.engine.sync_engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    cases = [_PATIENTS, ["p1"], ["p2"], ["p3"], ["p4"], ["p5"], ["missing"], ["p3", "p4"]]
    async with fresh_db.write() as conn:
        for patients in cases:
            general = _comparable(await grant_inputs.read_general(conn, patients))
            event.listen(engine, "before_cursor_execute", listener)
            try:
                chosen = await grant_inputs.read(conn, patients)
            finally:
                event.remove(engine, "before_cursor_execute", listener)
            assert _comparable(chosen) == general, patients
            if conn.dialect.name == "postgresql":
                assert len(statements) == 1  # (the general way: up to six)
                assert _comparable(await grant_inputs.read_one_statement(conn, patients)) == general
            statements.clear()
    # The data reaches every lookup: the comparison is not between empty answers.
    async with fresh_db.write() as conn:
        every = await grant_inputs.read_general(conn, _PATIENTS)
    assert len(every.relations) == 8 and len(every.rules) == 3
    assert every.bsns == {"p1": "999993653", "p3": "999990019", "p5": "999990020"}
    assert sorted(every.delegations, key=repr) == sorted(
        [
            ("person-a", "999993653", "24", None, None),
            ("person-a", "999993653", "100001", 5, 50),
            ("person-b", "999990019", "03", 7, None),
        ],
        key=repr,
    )
    assert every.registrars == {"p1": {"00000001", "00000002"}, "p5": {"00000001"}}
    assert every.types == {"00000001": frozenset({"Z3", "A1"}), "00000006": frozenset({"G6"})}
