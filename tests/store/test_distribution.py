"""Past one database (deploy/CITUS.md): every table of the migrated schema has a Citus placement, every
client-data table carries the client key (every row of a resource the resource's key, in the write's own
transaction), and the per-client query paths (compartment search, ``$everything``, the client's own
searches and reads, the client's own audit view) filter on the key."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.access.clients import Delegation, add_delegation
from hub.app import create_app
from hub.store.clientkey import NO_CLIENT
from hub.store.distribution import CLIENT_KEY, PLACEMENT, citus_ddl
from hub.store.migrate import alembic_config
from tests.conftest import DEFAULT_AS, _pg_create, _pg_drop, make_settings, token_for_app

CITUS_DOC = Path(__file__).resolve().parents[2] / "deploy" / "CITUS.md"
#: A predicate on the client key of the rows read (resource.client_key, or a table's own key column).
_KEYED = re.compile(r"\bclient_key\s*(=|IN\b)|\(\w+\.client_key, \w+\.pid\) IN\b", re.I)
#: The client's own audit view: audit_patient (distributed on patient_id) names the events.
_AUDIT_KEYED = re.compile(r"\bpatient_id\s*(=|IN\b)", re.I)
#: The migration that added the client key (hub/store/migrations/versions/0008_client_key.py).
CLIENT_KEY_REVISION = "0008"
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


async def test_every_client_data_table_carries_its_key(hub_app: Any) -> None:
    tables = await _columns(hub_app)
    for name, p in PLACEMENT.items():
        if p.kind == "distributed":
            assert p.key, f"{name} is distributed: name its client-key column"
            assert name in tables, f"{name} is placed but not in the schema"
            assert p.key in tables[name], f"{name} is distributed on {p.key}, which it lacks"
    # The store's own tables carry the resource's key on every row (idx_compartment beside comp_id).
    store = (
        "resource",
        "resource_history",
        "idx_compartment",
        "resource_author",
        "resource_owner",
        "care_source",
        "delegation",
    )
    for name in (*store, *(t for t in tables if t.startswith("idx_"))):
        assert CLIENT_KEY in tables[name], f"{name} lacks {CLIENT_KEY}"


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
            "content" in flat or "audit_log" in read
        ):
            out.append(flat)
    return out


async def test_per_client_paths_filter_on_the_client_key(
    client: httpx.AsyncClient, client_as: Any, count_statements: Any
) -> None:
    r = await client.put("/fhir/Patient/c1", json={"resourceType": "Patient", "id": "c1", "identifier": [BSN]})
    assert r.status_code in (200, 201)
    obs = []
    for i in range(3):
        r = await client.post(
            "/fhir/Observation",
            json={
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": f"o{i}"},
                "subject": {"reference": "Patient/c1"},
            },
        )
        assert r.status_code == 201
        obs.append(r.json()["id"])
    me = client_as("client:999993653")
    urls = (
        "/fhir/Patient/c1/Observation",
        "/fhir/Patient/c1/$everything",
        "/fhir/Observation",
        f"/fhir/Observation/{obs[0]}",
        "/fhir/AuditEvent?patient=c1",
    )
    for url in urls:
        with count_statements() as counter:
            r = await me.get(url)
        assert r.status_code == 200, (url, r.text)
        assert r.json().get("entry") or r.json()["resourceType"] == "Observation", url
        fetches = _fetches(counter.statements)
        assert fetches, url
        for statement in fetches:
            keyed = _AUDIT_KEYED if "audit_log" in statement else _KEYED
            assert keyed.search(statement), f"{url}: not filtered on the client key: {statement[:300]}"


BSN = {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999993653"}


async def _write_sample(client: httpx.AsyncClient, client_as: Any) -> None:
    """Writes that exercise every path a client key is written on: a Patient, resources in one, two and no
    Patient compartments, an update that moves a resource to another client, a delete, authorship and
    ownership (the default caller is a professional), a delegation derived from a Consent."""
    for pid, bsn in (("c1", BSN), ("c2", {**BSN, "value": "999990019"})):
        r = await client.put(f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid, "identifier": [bsn]})
        assert r.status_code in (200, 201), r.text
    r = await client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "Wijkteam"})
    assert r.status_code == 201
    r = await client.post(
        "/fhir/Questionnaire",
        json={"resourceType": "Questionnaire", "status": "active", "url": "https://zorgnet-hub.nl/q/welzijn"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/fhir/RiskAssessment",
        json={
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": "Patient/c1"},
            "prediction": [{"probabilityDecimal": 0.2}],
        },
    )
    assert r.status_code == 201, r.text
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "bp"},
        "valueQuantity": {"value": 120, "unit": "mm[Hg]"},
    }
    both = {**obs, "subject": {"reference": "Patient/c2"}, "performer": [{"reference": "Patient/c1"}]}
    assert (await client.post("/fhir/Observation", json=both)).status_code == 201
    r = await client.post("/fhir/Observation", json={**obs, "subject": {"reference": "Patient/c1"}})
    moved = r.json()
    r = await client.put(f"/fhir/Observation/{moved['id']}", json={**moved, "subject": {"reference": "Patient/c2"}})
    assert r.status_code == 200, r.text
    r = await client.post("/fhir/Observation", json={**obs, "subject": {"reference": "Patient/c1"}})
    assert (await client.delete(f"/fhir/Observation/{r.json()['id']}")).status_code in (200, 204)
    ura = {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "00012345"}
    r = await client.post("/fhir/Organization", json={"resourceType": "Organization", "identifier": [ura]})
    assert r.status_code == 201, r.text
    team = {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": {"reference": "Patient/c1"},
        "participant": [{"member": {"reference": f"Organization/{r.json()['id']}"}}],
    }
    r = await client_as("client:999993653").post("/fhir/CareTeam", json=team)  # a care relation the client makes
    assert r.status_code == 201, r.text
    grant = {
        "resourceType": "Parameters",
        "parameter": [{"name": "person", "valueString": "marieke"}, {"name": "category", "valueCode": "zorgplan"}],
    }
    r = await client_as("client:999993653").post("/fhir/Patient/c1/$grant-delegation", json=grant)
    assert r.status_code == 201, r.text


_BY_PID = (
    "idx_string",
    "idx_token",
    "idx_date",
    "idx_reference",
    "idx_quantity",
    "idx_number",
    "idx_uri",
    "idx_compartment",
    "resource_author",
    "resource_owner",
    "care_source",
)


async def _keys(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row's client key next to what it should be, per table (sorted, comparable)."""

    async def rows(sql: str) -> list[tuple[Any, ...]]:
        return sorted(tuple(r) for r in (await conn.execute(text(sql))).all())

    out = {
        "resource": await rows("SELECT pid, res_type, res_id, client_key FROM resource"),
        "compartments": await rows("SELECT pid, comp_id FROM idx_compartment WHERE comp_type = 'Patient'"),
        "resource_history": await rows(
            "SELECT h.hid, h.client_key, r.client_key FROM resource_history h JOIN resource r ON r.pid = h.pid"
        ),
        "delegation": await rows("SELECT id, patient_bsn, client_key FROM delegation"),
    }
    for table in _BY_PID:
        pid = "source_pid" if table == "care_source" else "pid"
        out[table] = await rows(  # noqa: S608  (table names from this module)
            f"SELECT t.{pid}, t.client_key, r.client_key FROM {table} t JOIN resource r ON r.pid = t.{pid}"
        )
    return out


def _check(keys: dict[str, list[tuple[Any, ...]]]) -> None:
    patients: dict[int, list[str]] = {}
    for pid, comp_id in keys["compartments"]:
        patients.setdefault(pid, []).append(comp_id)
    by_id = {}
    for pid, res_type, res_id, key in keys["resource"]:
        by_id[(res_type, res_id)] = key
        want = res_id if res_type == "Patient" else min(patients.get(pid, []), default=NO_CLIENT)
        assert key == want, (res_type, res_id, key, want)
    assert NO_CLIENT in by_id.values() and "c1" in by_id.values() and "c2" in by_id.values()
    for table in ("resource_history", *_BY_PID):
        assert keys[table], f"no {table} rows: the check would prove nothing"
        wrong = [row for row in keys[table] if row[1] != row[2]]
        assert not wrong, f"{table} rows whose client_key is not their resource's: {wrong[:3]}"
    bsn_of = {"999993653": "c1", "999990019": "c2"}
    assert keys["delegation"]
    for _id, bsn, key in keys["delegation"]:
        assert key == bsn_of.get(bsn, NO_CLIENT), (bsn, key)


async def test_every_row_carries_its_resources_client_key(
    client: httpx.AsyncClient, client_as: Any, hub_app: Any
) -> None:
    await _write_sample(client, client_as)
    async with hub_app.state.db.write() as conn:
        await add_delegation(conn, "p-bert", Delegation("999990019", "100001", ("agenda",)))
        await add_delegation(conn, "p-bert", Delegation("999991772", "100001", ("agenda",)))  # no Patient yet
    async with hub_app.state.db.read() as conn:
        keys = await _keys(conn)
    _check(keys)
    both = [k for _p, t, _i, k in keys["resource"] if t == "Observation"]
    # subject c2 and performer c1: the lowest (c1); the deleted one keeps c1; the moved one went to c2
    assert sorted(both) == ["c1", "c1", "c2"]


async def test_the_migration_backfills_what_the_store_writes(backend: str, tmp_path: Path, client_as: Any) -> None:
    """A database written by the store, taken back before the client-key migration and upgraded again:
    the backfill gives every row the key the store gave it."""
    url = await _fresh_database(backend, tmp_path)
    app = create_app(make_settings(url, tmp_path / "var"))
    try:
        async with app.router.lifespan_context(app):
            headers = {"Authorization": f"Bearer {token_for_app(app, DEFAULT_AS)}"}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", headers=headers) as c:

                def as_(spec: str) -> httpx.AsyncClient:
                    auth = {"Authorization": f"Bearer {token_for_app(app, spec)}"}
                    return httpx.AsyncClient(transport=transport, base_url="http://hub.test", headers=auth)

                await _write_sample(c, as_)
            async with app.state.db.read() as conn:
                written = await _keys(conn)
        _check(written)
        cfg = alembic_config(url)
        before = ScriptDirectory.from_config(cfg).get_revision(CLIENT_KEY_REVISION)
        assert before is not None
        await asyncio.to_thread(command.downgrade, cfg, str(before.down_revision))
        await asyncio.to_thread(command.upgrade, cfg, "head")
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                assert await _keys(conn) == written
        finally:
            await engine.dispose()
    finally:
        if backend == "postgresql":
            await _pg_drop(url.rsplit("/", 1)[1])


async def _fresh_database(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'backfill.db'}"
    return await _pg_create(f"hub_test_{uuid.uuid4().hex[:12]}")
