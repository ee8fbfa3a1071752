"""Storage of the authorization server: registered clients, used assertion ids, codes, persons.

Every function takes the ``AsyncConnection`` to work in (the caller owns the transaction).
Tables are in :mod:`hub.access.tables`; instants are microseconds since the epoch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
from joserfc.jwk import Key
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.facts import patient_ids_for_bsn
from hub.access.tables import delegation, oauth_client, oauth_code, oauth_jti, person
from hub.access.tokens import public_signing_keys
from hub.store.clientkey import NO_CLIENT

ClientKind = Literal["system", "pgo", "admin"]
CLIENT_KINDS: frozenset[str] = frozenset({"system", "pgo", "admin"})


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class RegisteredClient:
    """An application registered with the hub."""

    client_id: str
    kind: ClientKind
    name: str = ""
    organisation_ura: str | None = None
    jwks: dict[str, Any] | None = None
    redirect_uris: tuple[str, ...] = ()
    allowed_scopes: frozenset[str] = frozenset()
    active: bool = True

    def keys(self) -> dict[str, Key]:
        """The public signing keys of the registered JWKS, by kid."""
        return public_signing_keys(self.jwks) if self.jwks else {}


@dataclass(frozen=True)
class Delegation:
    """A client a person may act for: the client's BSN, the role code, the delegated categories."""

    bsn: str
    relation: str
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class PersonRecord:
    person_id: str
    name: str = ""
    bsn: str | None = None


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code stands for, as stored when the person approved."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    grant: dict[str, Any] = field(default_factory=dict)
    expires: int = 0


class DelegationLookup(Protocol):
    """Which clients ``person_id`` may act for at ``at_us`` (µs since epoch)."""

    async def __call__(self, conn: AsyncConnection, person_id: str, at_us: int) -> Sequence[Delegation]: ...


# --- clients ----------------------------------------------------------------------------------


async def register_client(conn: AsyncConnection, client: RegisteredClient) -> None:
    """Insert a client registration (or replace an existing one with the same id)."""
    if client.kind not in CLIENT_KINDS:
        raise ValueError(f"client kind must be one of {sorted(CLIENT_KINDS)}")
    if client.kind == "system" and client.jwks is None:
        raise ValueError("a system client needs a JWKS for private_key_jwt")
    if client.kind == "pgo" and not client.redirect_uris:
        raise ValueError("a pgo client needs at least one redirect URI")
    if client.jwks is not None:
        client.keys()  # refuse an unusable JWKS now rather than at the first token request
    values = {
        "kind": client.kind,
        "name": client.name,
        "organisation_ura": client.organisation_ura,
        "jwks": orjson.dumps(client.jwks).decode() if client.jwks is not None else None,
        "redirect_uris": orjson.dumps(list(client.redirect_uris)).decode(),
        "allowed_scopes": " ".join(sorted(client.allowed_scopes)),
        "active": client.active,
    }
    await conn.execute(delete(oauth_client).where(oauth_client.c.client_id == client.client_id))
    await conn.execute(insert(oauth_client).values(client_id=client.client_id, created=now_us(), **values))


async def get_client(conn: AsyncConnection, client_id: str) -> RegisteredClient | None:
    row = (await conn.execute(select(oauth_client).where(oauth_client.c.client_id == client_id))).first()
    if row is None:
        return None
    return RegisteredClient(
        client_id=row.client_id,
        kind=row.kind,
        name=row.name,
        organisation_ura=row.organisation_ura,
        jwks=orjson.loads(row.jwks) if row.jwks else None,
        redirect_uris=tuple(orjson.loads(row.redirect_uris or "[]")),
        allowed_scopes=frozenset((row.allowed_scopes or "").split()),
        active=bool(row.active),
    )


# --- assertion replay protection --------------------------------------------------------------


async def remember_assertion(conn: AsyncConnection, client_id: str, jti: str, expires_us: int) -> bool:
    """Record a client-assertion id; ``False`` when it was seen before (a replay).

    Uses ``INSERT .. ON CONFLICT DO NOTHING`` so a replay does not abort the transaction.
    """
    values = {"client_id": client_id, "jti": jti, "expires": expires_us}
    stmt: Any
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(oauth_jti).values(values).on_conflict_do_nothing()
    elif conn.dialect.name == "sqlite":
        stmt = sqlite.insert(oauth_jti).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported databases
        raise NotImplementedError(conn.dialect.name)
    result = await conn.execute(stmt)
    return result.rowcount == 1


async def prune_assertions(conn: AsyncConnection, before_us: int) -> int:
    """Forget assertion ids (and codes) that expired before ``before_us``; returns rows removed."""
    r1 = await conn.execute(delete(oauth_jti).where(oauth_jti.c.expires < before_us))
    r2 = await conn.execute(delete(oauth_code).where(oauth_code.c.expires < before_us))
    return int(r1.rowcount or 0) + int(r2.rowcount or 0)


# --- authorization codes ----------------------------------------------------------------------


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def store_code(conn: AsyncConnection, code: str, grant: CodeGrant) -> None:
    await conn.execute(
        insert(oauth_code).values(
            code_hash=code_hash(code),
            client_id=grant.client_id,
            redirect_uri=grant.redirect_uri,
            code_challenge=grant.code_challenge,
            grant=orjson.dumps(grant.grant).decode(),
            expires=grant.expires,
            used=False,
        )
    )


async def take_code(conn: AsyncConnection, code: str) -> tuple[CodeGrant | None, bool]:
    """Mark a code used and return its grant: ``(grant, True)`` the first time,
    ``(grant, False)`` on reuse, ``(None, False)`` for an unknown code.

    The compare-and-set ``UPDATE .. WHERE used = false`` makes two concurrent redemptions of one
    code see one winner.
    """
    h = code_hash(code)
    result = await conn.execute(
        update(oauth_code).where(and_(oauth_code.c.code_hash == h, oauth_code.c.used.is_(False))).values(used=True)
    )
    row = (await conn.execute(select(oauth_code).where(oauth_code.c.code_hash == h))).first()
    if row is None:
        return None, False
    grant = CodeGrant(row.client_id, row.redirect_uri, row.code_challenge, orjson.loads(row.grant), row.expires)
    return grant, result.rowcount == 1


# --- persons and delegations --------------------------------------------------------------------


async def add_person(conn: AsyncConnection, record: PersonRecord) -> None:
    await conn.execute(insert(person).values(person_id=record.person_id, name=record.name, bsn=record.bsn, active=True))


async def get_person(conn: AsyncConnection, person_id: str) -> PersonRecord | None:
    """An active registered person (a disabled one cannot log in)."""
    row = (await conn.execute(select(person).where(person.c.person_id == person_id, person.c.active.is_(True)))).first()
    return PersonRecord(row.person_id, row.name, row.bsn) if row else None


async def list_persons(conn: AsyncConnection, limit: int = 200) -> list[PersonRecord]:
    rows = (
        await conn.execute(
            select(person).where(person.c.active.is_(True)).order_by(person.c.name, person.c.person_id).limit(limit)
        )
    ).all()
    return [PersonRecord(r.person_id, r.name, r.bsn) for r in rows]


async def add_delegation(
    conn: AsyncConnection,
    person_id: str,
    item: Delegation,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
) -> None:
    """A delegation added directly (not derived from a Consent); its client key is the Patient with
    the BSN (none yet: :data:`~hub.store.clientkey.NO_CLIENT`)."""
    found = (await patient_ids_for_bsn(conn, [item.bsn])).get(item.bsn)
    await conn.execute(
        insert(delegation).values(
            client_key=min(found) if found else NO_CLIENT,
            person_id=person_id,
            patient_bsn=item.bsn,
            role_code=item.relation,
            categories=orjson.dumps(list(item.categories)).decode(),
            period_start=start_us,
            period_end=end_us,
            active=True,
        )
    )


async def table_delegations(conn: AsyncConnection, person_id: str, at_us: int) -> list[Delegation]:
    """The default :class:`DelegationLookup`: active rows of ``delegation`` in force at ``at_us``."""
    c = delegation.c
    rows = (
        await conn.execute(
            select(c.patient_bsn, c.role_code, c.categories)
            .where(c.person_id == person_id, c.active.is_(True))
            .where(or_(c.period_start.is_(None), c.period_start <= at_us))
            .where(or_(c.period_end.is_(None), c.period_end > at_us))
            .order_by(c.patient_bsn, c.id)
        )
    ).all()
    return [Delegation(r.patient_bsn, r.role_code, tuple(orjson.loads(r.categories or "[]"))) for r in rows]


__all__ = [
    "CLIENT_KINDS",
    "ClientKind",
    "CodeGrant",
    "Delegation",
    "DelegationLookup",
    "PersonRecord",
    "RegisteredClient",
    "add_delegation",
    "add_person",
    "code_hash",
    "get_client",
    "get_person",
    "list_persons",
    "now_us",
    "prune_assertions",
    "register_client",
    "remember_assertion",
    "store_code",
    "table_delegations",
]
