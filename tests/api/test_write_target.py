"""The current version a caller's write replaces is read in one statement with what the write check
asks about it (:func:`hub.store.resources.get_current_for_write`): its visibility, its creators and,
for a professional, whether the organisation wrote it and which of its clients it is in care of.
Differential: for every resource of a small network and every kind of organisation (in the care team,
acting on behalf of it, without a relationship, unknown), those answers equal the separate checks'."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.access.policy import AccessPolicy, build_policy
from hub.access.principal import Principal
from hub.store import resources as dao
from hub.store.tables import resource
from hub.workflows.check import owners_of
from tests.api.access_helpers import build, load
from tests.api.test_access_rules import A, B, C, network
from tests.conftest import clean

SCOPES = frozenset({"system/*.cruds"})


async def _policy(ura: str) -> AccessPolicy:
    policy = await build_policy(None, Principal("professional", "ecd", scopes=SCOPES, organisation_ura=ura))
    assert policy.read_types is None
    return policy


async def test_write_target_facts_equal_the_separate_checks(hub_app: Any) -> None:
    await clean(hub_app)
    await load(hub_app, build(network()))
    db = hub_app.state.services.repo.db
    async with db.write() as conn:
        rows = (await conn.execute(select(resource.c.res_type, resource.c.res_id, resource.c.pid))).all()
        assert len(rows) > 10
        yeses = {"authored": 0, "in_care": 0, "visible": 0, "owners": 0}
        for ura in (A, B, C, "29999999"):
            for res_type, res_id, pid in rows:
                fast = await _policy(ura)
                stored, visible = await dao.get_current_for_write(conn, res_type, res_id, fast)
                assert stored is not None and stored.pid == pid and stored.owners is not None
                slow = await _policy(ura)
                patients = await dao.patients_of(conn, [pid])
                in_care = {p for p in patients if await slow._in_care_query(conn, p)}
                assert fast.in_care == in_care, (ura, res_type, res_id)
                authored = await slow._authored(conn, pid)
                assert (pid in fast.authored) == authored, (ura, res_type, res_id)
                assert visible == bool(await slow.visible(conn, [pid])), (ura, res_type, res_id)
                plain = await dao.get_current(conn, res_type, res_id)
                assert plain is not None and plain.owners is None
                assert await owners_of(conn, stored, {}) == await owners_of(conn, plain, {})
                yeses["authored"] += authored
                yeses["in_care"] += bool(in_care)
                yeses["visible"] += visible
                yeses["owners"] += bool(stored.owners)
    assert all(yeses.values()), yeses  # every answer was a yes somewhere (and a no: the unknown URA)
