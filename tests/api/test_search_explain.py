"""Query plans on a 100k-resource PostgreSQL database: token, reference, date and string searches use
the index tables' indexes, never a sequential scan of an ``idx_*`` table.

The database is made by this test (schema by the real migrations, rows by ``INSERT ... SELECT
generate_series``: 50,000 Patients and 50,000 Observations with their index rows) and dropped after.
The plans are EXPLAINed from the exact statements the engine runs (:meth:`SearchEngine.page_statement`).
On SQLite the same statements are checked with ``EXPLAIN QUERY PLAN`` on the suite's database.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import create_async_engine

from hub.access.decision import SYSTEM
from hub.fhir.searchparams import load_registry
from hub.fhir.typeinfo import resource_types
from hub.store.migrate import upgrade_async
from hub.store.search.engine import SearchEngine, text_is_bytewise
from tests.conftest import _pg_create, _pg_drop

PATIENTS = 50_000
OBSERVATIONS = 50_000
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
DAY_US = 86_400_000_000
T2020 = 1_577_836_800_000_000  # 2020-01-01T00:00:00Z

#: One typical search per index table; each must be selective enough that an index is the right plan.
SEARCHES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "token": ("Patient", [("identifier", f"{BSN}|bsn12345")]),
    "token-code": ("Observation", [("code", "http://loinc.org|code-42"), ("_count", "10")]),
    "reference": ("Observation", [("subject", "Patient/pat123")]),
    "date": ("Observation", [("date", "2021-03-04")]),
    "date-range": ("Patient", [("birthdate", "ge1990-01-01"), ("birthdate", "lt1990-01-08")]),
    "string": ("Patient", [("family", "fam01234")]),
    "string-exact": ("Patient", [("family:exact", "Fam01234")]),
    "chain": ("Observation", [("subject:Patient.identifier", f"{BSN}|bsn12345")]),
    "has": ("Patient", [("_has:Observation:subject:code", "code-41")]),
}

_GENERATE = [
    # resources: pids 1..50,000 are Patients, 50,001..100,000 Observations
    """INSERT INTO resource (pid, res_type, res_id, version, last_updated, deleted, client_key, content{cat_col})
       SELECT i, 'Patient', 'pat' || i, 1, {t0} + i, false, 'pat' || i, '{{"resourceType":"Patient"}}'{cat_val}
       FROM generate_series(1, {np}) AS i""",
    """INSERT INTO resource (pid, res_type, res_id, version, last_updated, deleted, client_key, content{cat_col})
       SELECT {np} + i, 'Observation', 'obs' || i, 1, {t0} + i, false, 'pat' || (1 + i % {np}),
              '{{"resourceType":"Observation"}}'{cat_val}
       FROM generate_series(1, {no}) AS i""",
    """INSERT INTO idx_token (pid, res_type, param, grp, system, code, client_key)
       SELECT i, 'Patient', 'identifier', 0, '{bsn}', 'bsn' || i, 'pat' || i FROM generate_series(1, {np}) AS i""",
    """INSERT INTO idx_token (pid, res_type, param, grp, system, code, client_key)
       SELECT i, 'Patient', 'gender', 0, 'http://hl7.org/fhir/administrative-gender',
              (ARRAY['male','female','other','unknown'])[1 + i % 4], 'pat' || i FROM generate_series(1, {np}) AS i""",
    """INSERT INTO idx_token (pid, res_type, param, grp, system, code, client_key)
       SELECT {np} + i, 'Observation', 'code', 0, 'http://loinc.org', 'code-' || (i % 1000), 'pat' || (1 + i % {np})
       FROM generate_series(1, {no}) AS i""",
    """INSERT INTO idx_token (pid, res_type, param, grp, system, code, client_key)
       SELECT {np} + i, 'Observation', 'status', 0, 'http://hl7.org/fhir/observation-status', 'final',
              'pat' || (1 + i % {np})
       FROM generate_series(1, {no}) AS i""",
    """INSERT INTO idx_string (pid, res_type, param, grp, value_norm, value_exact, client_key)
       SELECT i, 'Patient', p, 0, 'fam' || lpad((i % 20000)::text, 5, '0'),
              'Fam' || lpad((i % 20000)::text, 5, '0'), 'pat' || i
       FROM generate_series(1, {np}) AS i, unnest(ARRAY['family', 'name']) AS p""",
    """INSERT INTO idx_date (pid, res_type, param, grp, low, high, client_key)
       SELECT i, 'Patient', 'birthdate', 0, {t0} - (i % 20000) * {day}, {t0} - (i % 20000) * {day} + {day} - 1,
              'pat' || i
       FROM generate_series(1, {np}) AS i""",
    """INSERT INTO idx_date (pid, res_type, param, grp, low, high, client_key)
       SELECT {np} + i, 'Observation', 'date', 0, {t0} + (i % 1500) * {day} + i, {t0} + (i % 1500) * {day} + i,
              'pat' || (1 + i % {np})
       FROM generate_series(1, {no}) AS i""",
    """INSERT INTO idx_reference (pid, res_type, param, grp, target_type, target_id, client_key)
       SELECT {np} + i, 'Observation', p, 0, 'Patient', 'pat' || (1 + i % {np}), 'pat' || (1 + i % {np})
       FROM generate_series(1, {no}) AS i, unnest(ARRAY['subject', 'patient']) AS p""",
    """INSERT INTO idx_compartment (pid, res_type, comp_type, comp_id, client_key)
       SELECT {np} + i, 'Observation', 'Patient', 'pat' || (1 + i % {np}), 'pat' || (1 + i % {np})
       FROM generate_series(1, {no}) AS i""",
]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", ()):
        out += _nodes(child)
    return out


def plan_shape(plan: dict[str, Any], depth: int = 0) -> list[str]:
    """The plan as indented lines: node type, relation and index (what the report records)."""
    parts = [plan["Node Type"]]
    if "Relation Name" in plan:
        parts.append(f"on {plan['Relation Name']}")
    if "Index Name" in plan:
        parts.append(f"using {plan['Index Name']}")
    lines = ["  " * depth + " ".join(parts)]
    for child in plan.get("Plans", ()):
        lines += plan_shape(child, depth + 1)
    return lines


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def big_pg() -> AsyncIterator[Any]:
    name = f"hub_explain_{uuid.uuid4().hex[:10]}"
    url = await _pg_create(name)
    engine = create_async_engine(url)
    try:
        await upgrade_async(url)
        async with engine.begin() as conn:
            cols = {
                r[0]
                for r in (
                    await conn.execute(
                        text("SELECT column_name FROM information_schema.columns WHERE table_name = 'resource'")
                    )
                ).all()
            }
            cat = "category" in cols
            fmt = {
                "np": PATIENTS,
                "no": OBSERVATIONS,
                "t0": T2020,
                "day": DAY_US,
                "bsn": BSN,
                "cat_col": ", category" if cat else "",
                "cat_val": ", 'medisch'" if cat else "",
            }
            for sql in _GENERATE:
                await conn.execute(text(sql.format(**fmt)))
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
        yield engine
    finally:
        await engine.dispose()
        await _pg_drop(name)


def _engine(bytewise: bool) -> SearchEngine:
    engine = SearchEngine(load_registry(), resource_types())
    engine.bytewise = bytewise
    return engine


async def test_pg_plans_use_indexes_on_100k_resources(big_pg: Any) -> None:
    shapes: dict[str, list[str]] = {}
    elapsed: dict[str, float] = {}
    async with big_pg.connect() as conn:
        search = _engine(await text_is_bytewise(conn))
        count = (await conn.execute(text("SELECT count(*) FROM resource"))).scalar_one()
        assert count == PATIENTS + OBSERVATIONS
        for label, (res_type, params) in SEARCHES.items():
            query = search.parse(res_type, params, strict=True)
            stmt = search.page_statement(query, visible=SYSTEM.sql_filter, local_base="http://hub.test/fhir")
            sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            raw = (await conn.execute(text("EXPLAIN (FORMAT JSON) " + sql))).scalar_one()
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            nodes = _nodes(plan)
            seq = [
                n["Relation Name"]
                for n in nodes
                if n["Node Type"] == "Seq Scan" and n.get("Relation Name", "").startswith("idx_")
            ]
            shapes[label] = plan_shape(plan)
            assert not seq, f"{label}: sequential scan of {seq}:\n" + "\n".join(shapes[label])
            used = {n.get("Index Name") for n in nodes if "Index Name" in n}
            assert any(i and i.startswith("ix_idx_") for i in used), f"{label}: " + "\n".join(shapes[label])
            started = time.perf_counter()
            page = await search.execute(conn, query, visible=SYSTEM.sql_filter, local_base="http://hub.test/fhir")
            elapsed[label] = round((time.perf_counter() - started) * 1000, 1)
            assert page.matches, label  # the searches do find something
    print(json.dumps({"ms": elapsed, "plans": shapes}, indent=1))


async def test_sqlite_plans_search_the_index_tables(hub_app: Any, backend: str) -> None:
    services = hub_app.state.services
    if backend != "sqlite":
        return  # the PostgreSQL plans are checked on the 100k database above
    async with services.repo.db.read() as conn:
        assert await text_is_bytewise(conn)
        for label, (res_type, params) in SEARCHES.items():
            query = services.search.parse(res_type, params, strict=True)
            stmt = services.search.page_statement(query, visible=SYSTEM.sql_filter, local_base="http://hub.test/fhir")
            sql = str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
            rows = (await conn.execute(text("EXPLAIN QUERY PLAN " + sql))).all()
            details = [str(r[-1]) for r in rows]
            scans = [d for d in details if d.startswith("SCAN idx_")]
            assert not scans, f"{label}: {details}"


#: Searches that pin their matches by key, each with a second criterion whose value is common (every
#: Observation is 'final') or rare: a generic plan cannot tell which, so it must start from the pin.
PINNED: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "subject+status": ("Observation", [("subject", "Patient/pat123"), ("status", "final")]),
    "subject+code": ("Observation", [("subject", "Patient/pat123"), ("code", "http://loinc.org|code-122")]),
    "subject+date": ("Observation", [("subject", "Patient/pat123"), ("date", "ge2020-01-01")]),
    "identifier": ("Patient", [("identifier", f"{BSN}|bsn12345")]),
    "chain+status": ("Observation", [("subject:Patient.identifier", f"{BSN}|bsn123"), ("status", "final")]),
}


async def test_pg_generic_plans_of_pinned_searches_start_from_the_pin(big_pg: Any) -> None:
    """What lets these searches keep a generic plan (SearchEngine.plan_stable): their statement, as
    prepared with bind values and planned without them (force_generic_plan), starts from the pinning
    criterion and reads a handful of rows, though a status of 'final' matches all 50,000 Observations."""
    async with big_pg.connect() as conn:
        search = _engine(await text_is_bytewise(conn))
        for label, (res_type, params) in PINNED.items():
            query = search.parse(res_type, params, strict=True)
            assert search.plan_stable(query, "http://hub.test/fhir"), label
            stmt = search.page_statement(
                query, visible=SYSTEM.sql_filter, local_base="http://hub.test/fhir", stable=True
            )
            state = stmt.compile(dialect=conn.dialect).construct_expanded_state(stmt.compile().params)
            sql, values = state.statement, state.positional_parameters
            name = f"pinned_{len(label)}_{abs(hash(label)) % 10_000}"
            await conn.exec_driver_sql(f"PREPARE {name} AS {sql}")
            await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            args = ", ".join(_literal(v) for v in values)
            raw = (await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({args})")).scalar_one()
            await conn.exec_driver_sql("RESET plan_cache_mode")
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
            nodes = _nodes(plan["Plan"])
            shape = "\n".join(plan_shape(plan["Plan"]))
            most = max(n["Actual Rows"] * n["Actual Loops"] for n in nodes)
            assert most < 100, f"{label}: a node returned {most} rows:\n{shape}"
            assert plan["Execution Time"] < 50, f"{label}: {plan['Execution Time']} ms:\n{shape}"
            page = await search.execute(conn, query, visible=SYSTEM.sql_filter, local_base="http://hub.test/fhir")
            assert page.matches or label == "subject+code", label


def _literal(value: Any) -> str:
    """A test value as SQL text (EXECUTE of a prepared statement takes no protocol parameters)."""
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def test_what_pins_a_search() -> None:
    """Only criteria that name their matches by key let a search keep a generic plan, and then only
    when every other criterion can be checked per row and nothing sorts."""
    search = _engine(True)

    def stable(res_type: str, params: list[tuple[str, str]]) -> bool:
        return search.plan_stable(search.parse(res_type, params, strict=True), "http://hub.test/fhir")

    assert stable("Observation", [("subject", "Patient/p1"), ("code", "http://loinc.org|1-8"), ("date", "ge2020")])
    assert stable("Patient", [("identifier", f"{BSN}|123")])
    assert stable("Patient", [("_id", "p1"), ("gender", "male")])
    assert stable("CareTeam", [("participant:Practitioner.identifier", "http://x|9"), ("status", "active")])
    assert not stable("Observation", [("status", "final")])
    assert not stable("Observation", [("code", "http://loinc.org|1-8")])
    assert not stable("Patient", [("identifier", "123")])  # a value without its system
    assert not stable("Observation", [("subject", "Patient/p1"), ("_sort", "date")])
    assert not stable("Observation", [("subject", "Patient/p1"), ("status:not", "final")])
    assert not stable("Observation", [("subject:Patient.name", "smit")])
    assert not stable("Patient", [("_has:Observation:subject:code", "x")])


def test_a_stable_plan_starts_from_the_best_pin() -> None:
    """With two pins, the plan starts from the one with the fewest matches to expect: a client's
    reference before an organisation's (which a great many resources may name), whatever the order."""
    search = _engine(True)
    for params in (
        [("owner", "Organization/o1"), ("patient", "Patient/p1")],
        [("patient", "Patient/p1"), ("owner", "Organization/o1")],
    ):
        query = search.parse("Task", params, strict=True)
        sql = " ".join(
            str(
                search.page_statement(query, visible=SYSTEM.sql_filter, stable=True).compile(
                    dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                )
            ).split()
        )
        start = sql.index("resource.pid IN (SELECT idx_reference.pid FROM idx_reference WHERE")
        per_row = sql.index("EXISTS (SELECT idx_reference.pid FROM idx_reference WHERE")
        assert "param = 'patient'" in sql[start : sql.index(")", start)], sql
        assert "param = 'owner'" in sql[per_row : sql.index(")", per_row)], sql
