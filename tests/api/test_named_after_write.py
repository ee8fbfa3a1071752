"""A write of ``Patient/x`` by id (update, patch, delete) looks up the named client x only when the
write itself did not note x (:func:`hub.api.handlers._names_only_itself`), as a read of it does.
Differential: for every outcome (written, refused, not found, invalid, already deleted) the audit
records, and whose view they are in, equal those of the lookup made first."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from hub.api import handlers
from hub.audit.tables import audit_log, audit_patient
from tests.api.access_helpers import build, load
from tests.api.test_access_rules import B, C, network
from tests.conftest import clean

Outcome = tuple[int, list[tuple[str, str, tuple[str, ...]]]]


async def _records_after(hub_app: Any, seq: int) -> tuple[int, list[tuple[str, str, tuple[str, ...]]]]:
    async with hub_app.state.services.repo.db.read() as conn:
        rows = (
            await conn.execute(
                select(audit_log.c.seq, audit_log.c.interaction, audit_log.c.outcome)
                .where(audit_log.c.seq > seq)
                .order_by(audit_log.c.seq)
            )
        ).all()
        patients: dict[int, list[str]] = {}
        for s, p in (await conn.execute(select(audit_patient.c.seq, audit_patient.c.patient_id))).all():
            patients.setdefault(int(s), []).append(str(p))
    last = max([seq, *(int(r[0]) for r in rows)])
    return last, [(str(r[1]), str(r[2]), tuple(sorted(patients.get(int(r[0]), [])))) for r in rows]


async def _scenario(hub_app: Any, client_as: Any) -> list[Outcome]:
    await clean(hub_app)
    await load(hub_app, build(network()))
    b, c = client_as(f"org:{B}"), client_as(f"org:{C}")
    patient = (await b.get("/fhir/Patient/pat-0")).json()
    renamed = {**patient, "name": [{"family": "Anders"}]}
    patch = [{"op": "replace", "path": "/gender", "value": "other"}]
    calls: list[tuple[Any, str, str, Any]] = [
        (c, "PUT", "/fhir/Patient/pat-0", renamed),  # not in care: refused (or not seen)
        (b, "PUT", "/fhir/Patient/pat-0", {**patient, "gender": "not-a-gender"}),  # invalid
        (b, "PUT", "/fhir/Patient/pat-0", renamed),  # written
        (b, "PATCH", "/fhir/Patient/pat-0", patch),
        (c, "DELETE", "/fhir/Patient/pat-1", None),
        (b, "DELETE", "/fhir/Patient/no-such-client", None),
        (b, "PUT", "/fhir/Patient/no-such-client", {**patient, "id": "no-such-client"}),
        (b, "DELETE", "/fhir/Patient/pat-0", None),
        (b, "DELETE", "/fhir/Patient/pat-0", None),  # already deleted
        (b, "PUT", "/fhir/Patient/pat-0", renamed),  # written again
    ]
    seq, _ = await _records_after(hub_app, 0)
    outcomes: list[Outcome] = []
    for client, method, url, body in calls:
        headers = {"Content-Type": "application/json-patch+json"} if method == "PATCH" else {}
        resp = await client.request(method, url, json=body, headers=headers)
        seq, records = await _records_after(hub_app, seq)
        outcomes.append((resp.status_code, records))
    return outcomes


async def test_a_patient_write_notes_the_named_client_as_the_lookup_first_did(
    hub_app: Any, client_as: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    after = await _scenario(hub_app, client_as)
    monkeypatch.setattr(handlers, "_WRITES_THAT_NOTE_ITSELF", frozenset())  # the lookup first for writes
    first = await _scenario(hub_app, client_as)
    assert after == first, (after, first)
    statuses = {status for status, _ in after}
    assert {200, 404}.issubset(statuses) and any(s >= 400 and s != 404 for s in statuses), after
    assert all(records for _, records in after)  # every attempt audited
