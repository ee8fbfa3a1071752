"""The read-by-id statement run on the asyncpg connection (hub.store.direct) answers exactly what the
same statement answers through SQLAlchemy: the same rows, the same access decision, the same
clients, and the same errors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, literal, select, text
from sqlalchemy.exc import DBAPIError

from hub.access.decision import SYSTEM
from hub.access.policy import build_policy
from hub.store import resources as dao
from hub.store.direct import DirectQuery
from tests.api.test_operations import C1, HUISARTS, STRANGER, demo  # noqa: F401  (fixture)
from tests.conftest import DEFAULT_AS, token_for_app

CALLERS = (HUISARTS, STRANGER, DEFAULT_AS, f"client:{C1}", "client:999990019", "admin")


async def _policies(hub_app: Any) -> list[Any]:
    verifier = hub_app.state.services.verifier
    out: list[Any] = [SYSTEM]
    for spec in CALLERS:
        principal = await verifier.verify(token_for_app(hub_app, spec))
        out.append(await build_policy(None, principal))
    return out


async def test_direct_read_matches_the_sqlalchemy_read(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
) -> None:
    # (on SQLite ``direct`` is ignored: both runs go through SQLAlchemy, and must agree all the same)
    # a deleted resource too: its row is still there, with deleted set and no content
    r = await client_as(HUISARTS).post(
        "/fhir/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "direct"},
            "subject": {"reference": f"Patient/{demo[C1]}"},
        },
    )
    assert r.status_code == 201, r.text
    gone = r.json()["id"]
    assert (await client_as(HUISARTS).delete(f"/fhir/Observation/{gone}")).status_code in (200, 204)
    db = hub_app.state.services.repo.db
    async with db.lookup() as conn:
        keys = [(t, i) for t, i in (await conn.execute(text("SELECT res_type, res_id FROM resource"))).all()]
    keys += [("Patient", "no-such-id"), ("Observation", gone)]
    assert len(keys) > 20
    policies = await _policies(hub_app)
    seen_visible = seen_hidden = 0
    for policy in policies:
        for res_type, res_id in keys:
            async with db.lookup() as conn:
                slow = await dao.get_current_checked(conn, res_type, res_id, policy)
                fast = await dao.get_current_checked(conn, res_type, res_id, policy, direct=True)
            assert fast == slow, (policy, res_type, res_id)
            seen_visible += bool(slow[0] is not None and slow[1])
            seen_hidden += bool(slow[0] is not None and not slow[1])
    assert seen_visible and seen_hidden  # both decisions were compared


async def test_direct_read_is_taken_when_nothing_observes_the_statements(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[str] = []
    original = DirectQuery.arguments

    def counted(self: DirectQuery, params: Any) -> Any:
        runs.append(params["read_id"])
        return original(self, params)

    monkeypatch.setattr(DirectQuery, "arguments", counted)
    r = await client_as(HUISARTS).get(f"/fhir/Patient/{demo[C1]}")
    assert r.status_code == 200
    assert r.json()["id"] == demo[C1]
    assert runs == ([demo[C1]] if backend == "postgresql" else [])


@pytest.mark.parametrize("lengths", [(0, 0), (1, 3), (3, 1), (2, 2)])
async def test_lists_of_every_length_give_their_own_statement(
    hub_app: Any, backend: str, lengths: tuple[int, int]
) -> None:
    db = hub_app.state.services.repo.db
    if backend != "postgresql":
        assert db.is_sqlite  # the driver path is asyncpg's; SQLite reads never take it (see above)
        return
    stmt = select(
        literal("x").in_(bindparam("a", expanding=True)).label("in_a"),
        literal(2).in_(bindparam("b", expanding=True)).label("in_b"),
        bindparam("c").label("c"),
        literal("fixed").label("fixed"),
    )
    params = {"a": ["x", "y", "z"][: lengths[0]], "b": [1, 2, 3][: lengths[1]], "c": "plain"}
    async with db.lookup() as conn:
        query = DirectQuery(stmt, conn.dialect)
        fast = await query.fetchrow(conn, params)
        slow = (await conn.execute(stmt, params)).first()
        again = await query.fetchrow(conn, {**params, "c": "other"})  # the cached form, other values
    assert fast is not None and slow is not None and again is not None
    assert tuple(fast) == tuple(slow)
    assert tuple(again)[2] == "other"


async def test_driver_errors_come_out_as_sqlalchemy_errors(hub_app: Any, backend: str) -> None:
    db = hub_app.state.services.repo.db
    if backend != "postgresql":
        assert db.is_sqlite  # the driver path is asyncpg's; SQLite reads never take it
        return
    stmt = select((literal(1) / bindparam("z", type_=literal(1).type)).label("q"))
    async with db.lookup() as conn:
        with pytest.raises(DBAPIError) as slow:
            await conn.execute(stmt, {"z": 0})
    async with db.lookup() as conn:
        with pytest.raises(DBAPIError) as fast:
            await DirectQuery(stmt, conn.dialect).fetchrow(conn, {"z": 0})
        # the connection is still usable after the error
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert type(fast.value) is type(slow.value)
    assert type(fast.value.orig) is type(slow.value.orig)
    assert getattr(fast.value.orig, "sqlstate", None) == getattr(slow.value.orig, "sqlstate", None) == "22012"
