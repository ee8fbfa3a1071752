"""A write by id that is all its transaction writes is made *alone* on PostgreSQL: its one statement
carries its audit record and commits on its own, and the read of the resource it replaces runs
before any BEGIN (:meth:`hub.store.repository.Repository._alone`,
:class:`hub.store.pg_writes.Appendix`). Differential: for creates, reads, updates, patches and
deletes of every outcome (written, refused by the care condition, stale If-Match, not found, hidden,
already deleted, written again, Organizations without a URA, one whose version naming a URA and the
deletion of that derive facts), the answers, what is stored (versions, history, index rows,
creators) and the audit records equal those of the general path (one transaction, the record
appended last), and the audit chain verifies. The same through SQLAlchemy when someone listens to
the statements (the driver's way otherwise, :func:`hub.store.direct.on_its_own_driver`)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, select

from hub.access.tables import resource_author
from hub.audit.tables import audit_entity, audit_log, audit_patient
from hub.audit.trail import AuditTrail
from hub.audit.verify import verify_log
from hub.store.repository import Repository
from hub.store.tables import INDEX_TABLES, resource, resource_history
from hub.workflows.tables import resource_owner
from tests.api.access_helpers import build, load
from tests.api.test_access_rules import B, C, network
from tests.conftest import clean

OBS: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "subject": {"reference": "Patient/pat-0"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
}
ORG: dict[str, Any] = {"resourceType": "Organization", "active": True, "name": "Zonder URA"}
URA = {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "00077777"}


async def _records_after(hub_app: Any, seq: int) -> tuple[int, list[tuple[Any, ...]]]:
    """The audit records after ``seq``: interaction, outcome, clients and entities of each."""
    async with hub_app.state.services.repo.db.read() as conn:
        rows = (
            await conn.execute(
                select(audit_log.c.seq, audit_log.c.interaction, audit_log.c.action, audit_log.c.outcome)
                .where(audit_log.c.seq > seq)
                .order_by(audit_log.c.seq)
            )
        ).all()
        patients: dict[int, list[str]] = {}
        for s, p in (await conn.execute(select(audit_patient.c.seq, audit_patient.c.patient_id))).all():
            patients.setdefault(int(s), []).append(str(p))
        entities: dict[int, list[str]] = {}
        for s, e in (await conn.execute(select(audit_entity.c.seq, audit_entity.c.ref))).all():
            entities.setdefault(int(s), []).append(str(e))
    last = max([seq, *(int(r[0]) for r in rows)])
    named = _Names()
    return last, [
        (
            str(r[1]),
            str(r[2]),
            str(r[3]),
            tuple(sorted(patients.get(int(r[0]), []))),
            tuple(sorted(named(e) for e in entities.get(int(r[0]), []))),
        )
        for r in rows
    ]


class _Names:
    """Server-assigned ids replaced by the order they are first seen in (the two runs make others)."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, ref: str) -> str:
        parts = ref.split("/")
        if len(parts) >= 2 and len(parts[1]) == 36:  # a uuid
            parts[1] = self.seen.setdefault(parts[1], f"new-{len(self.seen)}")
        return "/".join(parts)


async def _stored(hub_app: Any, ids: dict[str, str]) -> list[tuple[Any, ...]]:
    """What is stored of the scenario's resources: every version, the current row, index rows, creators."""
    out: list[tuple[Any, ...]] = []
    async with hub_app.state.services.repo.db.read() as conn:
        for name, ref in sorted(ids.items()):
            res_type, res_id = ref.split("/")
            current = (
                await conn.execute(
                    select(resource.c.pid, resource.c.version, resource.c.deleted, resource.c.category).where(
                        resource.c.res_type == res_type, resource.c.res_id == res_id
                    )
                )
            ).first()
            if current is None:
                out.append((name, None))
                continue
            pid = current[0]
            versions = (
                await conn.execute(
                    select(resource_history.c.version, resource_history.c.method, resource_history.c.content.is_(None))
                    .where(resource_history.c.pid == pid)
                    .order_by(resource_history.c.version)
                )
            ).all()
            counts = []
            for table in INDEX_TABLES.values():
                n = (await conn.execute(select(func.count()).select_from(table).where(table.c.pid == pid))).scalar()
                counts.append((table.name, n))
            owners = (await conn.execute(select(resource_owner.c.party).where(resource_owner.c.pid == pid))).all()
            authors = (await conn.execute(select(resource_author.c.ura).where(resource_author.c.pid == pid))).all()
            parties = (sorted(o[0] for o in owners), sorted(a[0] for a in authors))
            out.append((name, tuple(current[1:]), [tuple(v) for v in versions], counts, parties))
    return out


async def _scenario(hub_app: Any, client_as: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    await clean(hub_app)
    await load(hub_app, build(network()))
    b, c = client_as(f"org:{B}"), client_as(f"org:{C}")
    seq, _ = await _records_after(hub_app, 0)
    ids: dict[str, str] = {}
    outcomes: list[tuple[Any, ...]] = []

    async def call(client: Any, method: str, url: str, body: Any = None, **headers: str) -> Any:
        nonlocal seq
        if method == "PATCH":
            headers["Content-Type"] = "application/json-patch+json"
        resp = await client.request(method, url, json=body, headers=headers)
        seq, records = await _records_after(hub_app, seq)
        outcomes.append((method, url.split("/")[2] if url.count("/") > 2 else url, resp.status_code, records))
        return resp

    made = await call(b, "POST", "/fhir/Observation", OBS)  # in care: written
    ids["obs"] = f"Observation/{made.json()['id']}"
    await call(c, "POST", "/fhir/Observation", OBS)  # no care relationship: refused by the condition
    org = await call(b, "POST", "/fhir/Organization", ORG)  # a type with after-write facts
    ids["org"] = f"Organization/{org.json()['id']}"
    obs = f"/fhir/{ids['obs']}"
    body = {**made.json(), "status": "amended"}
    await call(b, "GET", obs)
    await call(b, "PUT", obs, body, **{"If-Match": 'W/"1"'})
    await call(b, "PUT", obs, body, **{"If-Match": 'W/"1"'})  # stale
    await call(c, "PUT", obs, body)  # hidden from C
    await call(b, "PATCH", obs, [{"op": "replace", "path": "/status", "value": "corrected"}])
    await call(b, "PUT", "/fhir/Observation/chosen-id", {**OBS, "id": "chosen-id"})  # a create by update
    ids["chosen"] = "Observation/chosen-id"
    await call(b, "PUT", f"/fhir/{ids['org']}", {**ORG, "id": org.json()["id"], "name": "Anders"})  # still no URA
    await call(b, "PUT", f"/fhir/{ids['org']}", {**ORG, "id": org.json()["id"], "identifier": [URA]})
    await call(c, "DELETE", obs)  # hidden from C
    await call(b, "DELETE", obs)
    await call(b, "DELETE", obs)  # already deleted
    await call(b, "GET", obs)
    await call(b, "PUT", obs, body)  # written again
    await call(b, "DELETE", "/fhir/Observation/no-such-id")
    await call(b, "DELETE", f"/fhir/{ids['org']}")
    other = await call(b, "POST", "/fhir/Organization", ORG)
    ids["other"] = f"Organization/{other.json()['id']}"
    await call(b, "DELETE", f"/fhir/{ids['other']}")  # named no URA: derives nothing
    return outcomes, await _stored(hub_app, ids)


async def test_writes_made_alone_equal_the_general_path(
    hub_app: Any, client_as: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made_alone: list[str] = []
    appended = AuditTrail.appended

    def counting(self: AuditTrail, appendix: Any, stored: Any, patients: Any) -> None:
        made_alone.append(f"{stored.res_type}/{stored.version}/{stored.method}")
        appended(self, appendix, stored, patients)

    monkeypatch.setattr(AuditTrail, "appended", counting)
    alone = await _scenario(hub_app, client_as)
    if backend == "postgresql":
        # the Observation's writes by id and the Organization's versions without a URA replacing
        # none with one (they derive nothing); not its version naming a URA, nor the deletion of that
        # (they derive again what references it), nor anything refused, nor the re-creation after the
        # delete (its creators replace the earlier life's)
        expected = ["Observation/1/POST", "Organization/1/POST", "Observation/2/PUT", "Observation/3/PATCH"]
        expected += ["Observation/1/PUT", "Organization/2/PUT", "Observation/4/DELETE"]
        expected += ["Organization/1/POST", "Organization/2/DELETE"]
        assert made_alone == expected, made_alone
    else:
        assert made_alone == []
    # with someone listening to the statements, a write made alone runs through SQLAlchemy: the same
    db = hub_app.state.services.repo.db
    seen: list[str] = []

    def listen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    for engine in db.engines:
        event.listen(engine.sync_engine, "before_cursor_execute", listen)
    try:
        observed = await _scenario(hub_app, client_as)
    finally:
        for engine in db.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", listen)
    assert observed == alone
    assert len(made_alone) == (18 if backend == "postgresql" else 0)
    assert any("cur AS" in s and "WITH r AS" in s for s in seen) == (backend == "postgresql")
    monkeypatch.setattr(Repository, "_alone", lambda *_args: False)
    general = await _scenario(hub_app, client_as)
    assert alone == general
    statuses = [o[2] for o in alone[0]]
    assert {200, 201, 403, 404, 410, 412}.issubset(statuses), statuses
    assert all(o[3] for o in alone[0])  # every attempt audited
    async with hub_app.state.services.repo.db.read() as conn:
        verified = await verify_log(conn, keyring=None)
    assert verified.ok, verified.summary()
