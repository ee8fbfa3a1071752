"""The organisation registry: which URAs are known organisations, of which kind and type.

Administrators keep it (``hub orgs add|list|disable``, ``/admin/organisations`` in
:mod:`hub.api.routes.admin`); the demo
loader registers the demo network's organisations. Decisions that depend on *what* an organisation
is read it here, never from an Organization resource (which any professional may write):

- consent rules by organisation type (e.g. ``medisch`` for huisartsen, type Z3);
- emergency access (break the glass): registered, active care providers only;
- a toewijzing (Wmo ServiceRequest) written by a registered gemeente brings the provider into care.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.tables import organisation
from hub.fhir.errors import BadRequest, NotFound
from hub.fhir.instants import now_us
from hub.store import pg_batch
from hub.store.direct import InTransaction

#: What an organisation is: a care provider (zorgaanbieder) or a municipality (gemeente).
KINDS = frozenset({"zorgaanbieder", "gemeente"})


@dataclass(frozen=True, slots=True)
class Organisation:
    ura: str
    name: str
    kind: str
    types: tuple[str, ...]
    active: bool

    def as_json(self) -> dict[str, Any]:
        return {"ura": self.ura, "name": self.name, "kind": self.kind, "types": list(self.types), "active": self.active}


def check_ura(ura: Any) -> str:
    """An URA: exactly eight ASCII digits."""
    if not isinstance(ura, str) or len(ura) != 8 or not ura.isascii() or not ura.isdigit():
        raise BadRequest(f"'{ura}' is not an URA (eight digits 0-9)", code="value", expression="ura")
    return ura


def _row(row: Any) -> Organisation:
    """A registry row (``select(organisation)``'s columns, by position: a Row or a driver Record)."""
    ura, name, kind, types, active = row[:5]
    return Organisation(ura, name, kind, tuple(orjson.loads(types or "[]")), bool(active))


async def register(
    conn: AsyncConnection,
    ura: str,
    *,
    name: str = "",
    kind: str = "zorgaanbieder",
    types: tuple[str, ...] | list[str] = (),
    active: bool = True,
) -> Organisation:
    """Add or replace one registry entry."""
    check_ura(ura)
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(sorted(KINDS))}", code="value", expression="kind")
    codes = sorted({str(t) for t in types})
    values = {
        "ura": ura,
        "name": name,
        "kind": kind,
        "types": orjson.dumps(codes).decode(),
        "active": active,
        "created": now_us(),
    }
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = dialect_insert(organisation).values(**values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["ura"],
            set_={k: v for k, v in values.items() if k not in ("ura", "created")},
        )
    )
    await _recompute_for(conn, ura)
    return Organisation(ura, name, kind, tuple(codes), active)


async def _recompute_for(conn: AsyncConnection, ura: str) -> None:
    """What the organisation is decides consent rules by type: recompute the grants of its clients."""
    from hub.access.facts import recompute
    from hub.access.tables import care_relation

    rows = (
        await conn.execute(select(care_relation.c.patient_id).where(care_relation.c.org_ura == ura).distinct())
    ).all()
    await recompute(conn, [r[0] for r in rows])


#: One organisation's entry (built once: every request of a professional may ask it; on the driver
#: connection in a write transaction, hub.store.direct).
_BY_URA = InTransaction(
    select(organisation)
    .where(organisation.c.ura == bindparam("ura"))
    .execution_options(**{pg_batch.READS: frozenset()})  # (the registry: no waiting create is read)
)


async def get(conn: AsyncConnection, ura: str | None) -> Organisation | None:
    """The entry of an active organisation (None: not registered, or disabled)."""
    if not ura:
        return None
    rows = await _BY_URA.fetch(conn, {"ura": ura})
    found = _row(rows[0]) if rows else None
    return found if found is not None and found.active else None


async def all_organisations(conn: AsyncConnection) -> list[Organisation]:
    rows = (await conn.execute(select(organisation).order_by(organisation.c.ura))).all()
    return [_row(r) for r in rows]


async def disable(conn: AsyncConnection, ura: str) -> None:
    result = await conn.execute(update(organisation).where(organisation.c.ura == ura).values(active=False))
    if result.rowcount != 1:
        raise NotFound(f"Organisation {ura} is not registered")
    await _recompute_for(conn, ura)


__all__ = ["KINDS", "Organisation", "all_organisations", "check_ura", "disable", "get", "register"]
