"""Past one database (deploy/CITUS.md): every table of the migrated schema has a Citus placement, every
client-data table carries the client key or is named with the migration that adds it, and the per-client
query paths (compartment search, ``$everything``, the client's own audit view) filter on the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import inspect

from hub.store.distribution import CLIENT_KEY, PLACEMENT, citus_ddl

CITUS_DOC = Path(__file__).resolve().parents[2] / "deploy" / "CITUS.md"
#: A predicate on a client key: comp_id (idx_compartment), patient_id (access facts, audit_patient), client_key.
_KEYED = re.compile(r"\b(comp_id|patient_id|client_key)\s*(=|IN\b)", re.I)
_READS = re.compile(r"\bFROM\s+(\w+)|\bJOIN\s+(\w+)", re.I)


async def _columns(hub_app: Any) -> dict[str, set[str]]:
    async with hub_app.state.db.read() as conn:
        def read(sync: Any) -> dict[str, set[str]]:
            insp = inspect(sync)
            return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}

        return await conn.run_sync(read)


async def test_every_table_has_a_placement(hub_app: Any) -> None:
    tables = await _columns(hub_app)
    unplaced = sorted(set(tables) - set(PLACEMENT))
    assert not unplaced, f"place these tables in hub/store/distribution.py (and deploy/CITUS.md): {unplaced}"


async def test_client_data_tables_carry_the_key_or_name_the_migration(hub_app: Any) -> None:
    tables = await _columns(hub_app)
    doc = CITUS_DOC.read_text()
    for name, p in PLACEMENT.items():
        if p.kind != "distributed" or name not in tables:
            continue
        if p.missing is None:
            assert p.key in tables[name], f"{name} is distributed on {p.key}, which it lacks"
        else:
            assert CLIENT_KEY not in tables[name], f"{name} has {CLIENT_KEY} now: drop its 'missing' note"
            assert f"`{name}`" in doc, f"deploy/CITUS.md must name {name} and the migration that keys it"


def test_citus_ddl_places_every_table() -> None:
    ddl = "\n".join(citus_ddl())
    for name, p in PLACEMENT.items():
        if p.kind == "distributed":
            assert f"create_distributed_table('{name}'" in ddl
        elif p.kind == "reference":
            assert f"create_reference_table('{name}')" in ddl
        else:
            assert f"'{name}'" not in ddl
    assert "create_distributed_table('care_relation', 'patient_id', colocate_with => 'resource')" in ddl
    assert "create_distributed_table('resource', 'client_key')" in ddl
    doc = CITUS_DOC.read_text()
    missing = [line for line in citus_ddl() if line not in doc]
    assert not missing, f"deploy/CITUS.md must show the DDL (python -m hub.store.distribution): {missing}"


def _fetches(statements: list[str]) -> list[str]:
    """The statements that read rows of client-data tables for the answer (not the caller's identity)."""
    out = []
    for s in statements:
        flat = " ".join(s.split())
        if not flat.upper().startswith("SELECT"):
            continue
        read = {a or b for a, b in _READS.findall(flat)}
        if any(PLACEMENT.get(t) and PLACEMENT[t].kind == "distributed" for t in read) and (
                "content" in flat or "audit_log" in read):
            out.append(flat)
    return out


async def test_per_client_paths_filter_on_the_client_key(
    client: httpx.AsyncClient, client_as: Any, count_statements: Any
) -> None:
    bsn = {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999993653"}
    r = await client.put("/fhir/Patient/c1", json={"resourceType": "Patient", "id": "c1", "identifier": [bsn]})
    assert r.status_code in (200, 201)
    for i in range(3):
        r = await client.post("/fhir/Observation", json={
            "resourceType": "Observation", "status": "final", "code": {"text": f"o{i}"},
            "subject": {"reference": "Patient/c1"}})
        assert r.status_code == 201
    me = client_as("client:999993653")
    for url in ("/fhir/Patient/c1/Observation", "/fhir/Patient/c1/$everything", "/fhir/AuditEvent?patient=c1"):
        with count_statements() as counter:
            r = await me.get(url)
        assert r.status_code == 200, (url, r.text)
        assert r.json().get("entry"), url
        fetches = _fetches(counter.statements)
        assert fetches, url
        for statement in fetches:
            assert _KEYED.search(statement), f"{url}: not filtered on the client key: {statement[:300]}"
