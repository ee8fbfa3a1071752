"""Registering who may use the hub: applications (professional systems, PGO apps) and people who log in.

One implementation behind both doors: the ``hub apps`` / ``hub people`` commands and the admin-only
``/admin/apps`` and ``/admin/people`` endpoints call these functions, each in the caller's transaction.
Client ids are generated (``sys-…``, ``pgo-…``) unless the operator names one; registering an id that
exists is refused (a rotation is an explicit :func:`rotate_keys`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.clients import PersonRecord, RegisteredClient, get_client, register_client
from hub.access.tables import oauth_client, person

#: What a professional system may ask for, unless the operator narrows it.
SYSTEM_SCOPES = frozenset({"system/*.cruds"})
#: What a PGO app may ask for: the client's own data, and the SMART patient launch context.
PGO_SCOPES = frozenset({"patient/*.cruds", "launch/patient"})

_URA = re.compile(r"^[0-9]{8}$")
_BSN = re.compile(r"^[0-9]{9}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{3,200}$")
_PERSON_ID = re.compile(r"^[A-Za-z0-9._~-]{2,64}$")


class RegistrationError(ValueError):
    """A registration request that cannot be carried out; the message says what is wrong."""


@dataclass(frozen=True)
class ClientView:
    """What an operator sees of a registered application (never a private key: the hub holds none)."""

    client_id: str
    kind: str
    name: str
    organisation_ura: str | None
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    active: bool
    key_ids: tuple[str, ...]
    jwks_url: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "kind": self.kind,
            "name": self.name,
            "organisation_ura": self.organisation_ura,
            "redirect_uris": list(self.redirect_uris),
            "scopes": list(self.scopes),
            "active": self.active,
            "key_ids": list(self.key_ids),
            "jwks_url": self.jwks_url,
        }


def _view(client: RegisteredClient) -> ClientView:
    jwks = client.jwks or {}
    return ClientView(
        client_id=client.client_id,
        kind=client.kind,
        name=client.name,
        organisation_ura=client.organisation_ura,
        redirect_uris=client.redirect_uris,
        scopes=tuple(sorted(client.allowed_scopes)),
        active=client.active,
        key_ids=tuple(str(k.get("kid", "")) for k in jwks.get("keys", []) if isinstance(k, dict)),
        jwks_url=jwks.get("jwks_url") if isinstance(jwks.get("jwks_url"), str) else None,
    )


def jwks_from_public_key(pem: bytes | str) -> dict[str, Any]:
    """A JWK Set holding one public key (PEM), with a kid (its RFC 7638 thumbprint) and a ``use``."""
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    data = pem.encode() if isinstance(pem, str) else pem
    errors: list[str] = []
    for cls in (RSAKey, ECKey, OKPKey):
        try:
            key: Any = cls.import_key(data)
        except Exception as exc:  # noqa: BLE001 - try the next key type
            errors.append(f"{cls.__name__}: {exc}")
            continue
        if key.is_private:
            raise RegistrationError("give the PUBLIC key: the hub must never hold a client's private key")
        jwk = key.as_dict(private=False)
        jwk["kid"] = key.thumbprint()
        jwk["use"] = "sig"
        return {"keys": [jwk]}
    raise RegistrationError("not a PEM public key (RSA, EC or Ed25519)")


def check_jwks(jwks: Any) -> dict[str, Any]:
    """A JWK Set a client's assertions can be verified with; refuses private keys and empty sets."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise RegistrationError("a JWK Set needs a non-empty 'keys' array")
    for item in jwks["keys"]:
        if not isinstance(item, dict) or "d" in item:
            raise RegistrationError("a JWK Set for registration must hold public keys only")
    try:
        KeySet.import_key_set(jwks)  # type: ignore[arg-type]  # a plain dict, checked by joserfc itself
    except Exception as exc:  # noqa: BLE001 - joserfc raises several kinds
        raise RegistrationError(f"unusable JWK Set: {exc}") from None
    return {"keys": list(jwks["keys"])}


def _check_redirect(uri: str) -> str:
    parts = urlsplit(uri)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise RegistrationError(f"redirect URI {uri!r} must be an absolute http(s) URL without a fragment")
    if parts.scheme == "http" and not local:
        raise RegistrationError(f"redirect URI {uri!r}: plain http is only allowed on loopback")
    return uri


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


async def _insert_new(conn: AsyncConnection, client: RegisteredClient) -> ClientView:
    if not _CLIENT_ID.match(client.client_id):
        raise RegistrationError("client id: 3-200 characters of A-Z a-z 0-9 . _ ~ -")
    if await get_client(conn, client.client_id) is not None:
        raise RegistrationError(f"client id {client.client_id!r} is already registered")
    await register_client(conn, client)
    return _view(client)


async def add_system(
    conn: AsyncConnection,
    *,
    name: str,
    ura: str,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    client_id: str | None = None,
    scopes: Sequence[str] = (),
) -> ClientView:
    """Register a professional system acting for the organisation with ``ura`` (private_key_jwt).

    Its assertions are verified with ``jwks`` (held by the hub) or with the keys published at
    ``jwks_url`` (fetched when an assertion names a key the hub has not seen; rotation needs no call).
    """
    if not _URA.match(ura):
        raise RegistrationError("URA must be 8 digits (0-9)")
    if not name.strip():
        raise RegistrationError("a name is required")
    if (jwks is None) == (jwks_url is None):
        raise RegistrationError("give exactly one of a public key / JWK Set and a JWKS URL")
    if jwks_url is not None:
        parts = urlsplit(jwks_url)
        if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise RegistrationError("a JWKS URL must be https (plain http only on loopback)")
        key_set: dict[str, Any] = {"keys": [], "jwks_url": jwks_url}
    else:
        key_set = check_jwks(jwks)
    client = RegisteredClient(
        client_id=client_id or _new_id("sys"),
        kind="system",
        name=name.strip(),
        organisation_ura=ura,
        jwks=key_set,
        allowed_scopes=frozenset(scopes) or SYSTEM_SCOPES,
    )
    return await _insert_new(conn, client)


async def add_pgo(
    conn: AsyncConnection,
    *,
    name: str,
    redirect_uris: Sequence[str],
    client_id: str | None = None,
) -> ClientView:
    """Register a PGO app: a public client (authorization code + PKCE) with exact redirect URIs."""
    if not name.strip():
        raise RegistrationError("a name is required")
    if not redirect_uris:
        raise RegistrationError("a PGO app needs at least one --redirect-uri")
    client = RegisteredClient(
        client_id=client_id or _new_id("pgo"),
        kind="pgo",
        name=name.strip(),
        redirect_uris=tuple(_check_redirect(u) for u in redirect_uris),
        allowed_scopes=PGO_SCOPES,
    )
    return await _insert_new(conn, client)


async def list_clients(conn: AsyncConnection) -> list[ClientView]:
    rows = (await conn.execute(select(oauth_client.c.client_id).order_by(oauth_client.c.client_id))).all()
    out = []
    for row in rows:
        client = await get_client(conn, row.client_id)
        if client is not None:
            out.append(_view(client))
    return out


async def _existing(conn: AsyncConnection, client_id: str) -> RegisteredClient:
    client = await get_client(conn, client_id)
    if client is None:
        raise RegistrationError(f"no registered client {client_id!r}")
    return client


async def set_client_active(conn: AsyncConnection, client_id: str, active: bool) -> ClientView:
    """Disable (or enable again) a client: its next token request is refused."""
    client = await _existing(conn, client_id)
    await conn.execute(update(oauth_client).where(oauth_client.c.client_id == client_id).values(active=active))
    return _view(RegisteredClient(**{**client.__dict__, "active": active}))


async def rotate_keys(
    conn: AsyncConnection, client_id: str, jwks: dict[str, Any], *, keep_old: bool = False
) -> ClientView:
    """Replace a system client's keys; ``keep_old`` keeps the previous ones for an overlap period."""
    client = await _existing(conn, client_id)
    if client.kind not in ("system", "admin"):
        raise RegistrationError("only a system client has keys to rotate")
    new = check_jwks(jwks)
    if keep_old and client.jwks:
        new_kids = {k.get("kid") for k in new["keys"]}
        new["keys"] += [k for k in client.jwks.get("keys", []) if k.get("kid") not in new_kids]
    await conn.execute(
        update(oauth_client).where(oauth_client.c.client_id == client_id).values(jwks=orjson.dumps(new).decode())
    )
    return _view(RegisteredClient(**{**client.__dict__, "jwks": new}))


# --- people ------------------------------------------------------------------------------------------

PersonStatus = Literal["active", "disabled"]


@dataclass(frozen=True)
class PersonView:
    person_id: str
    name: str
    bsn: str | None
    active: bool

    def as_json(self) -> dict[str, Any]:
        return {"person_id": self.person_id, "name": self.name, "bsn": self.bsn, "active": self.active}


async def add_person(conn: AsyncConnection, *, person_id: str, name: str, bsn: str | None = None) -> PersonView:
    """A person who may log in through the (development) login: a client by their own BSN, or a
    mantelzorger whose rights come from the client's delegations."""
    if not _PERSON_ID.match(person_id) or person_id.startswith("bsn:"):
        raise RegistrationError("person id: 2-64 characters of A-Z a-z 0-9 . _ ~ -")
    if bsn is not None and not _BSN.match(bsn):
        raise RegistrationError("BSN must be 9 digits (0-9)")
    if not name.strip():
        raise RegistrationError("a name is required")
    exists = (await conn.execute(select(person.c.person_id).where(person.c.person_id == person_id))).first()
    if exists is not None:
        raise RegistrationError(f"person {person_id!r} is already registered")
    await conn.execute(person.insert().values(person_id=person_id, name=name.strip(), bsn=bsn, active=True))
    return PersonView(person_id, name.strip(), bsn, True)


async def list_people(conn: AsyncConnection) -> list[PersonView]:
    rows = (await conn.execute(select(person).order_by(person.c.person_id))).all()
    return [PersonView(r.person_id, r.name, r.bsn, bool(r.active)) for r in rows]


async def set_person_active(conn: AsyncConnection, person_id: str, active: bool) -> PersonView:
    row = (await conn.execute(select(person).where(person.c.person_id == person_id))).first()
    if row is None:
        raise RegistrationError(f"no registered person {person_id!r}")
    await conn.execute(update(person).where(person.c.person_id == person_id).values(active=active))
    return PersonView(row.person_id, row.name, row.bsn, active)


def as_record(view: PersonView) -> PersonRecord:
    return PersonRecord(view.person_id, view.name, view.bsn)


__all__ = [
    "PGO_SCOPES",
    "SYSTEM_SCOPES",
    "ClientView",
    "PersonStatus",
    "PersonView",
    "RegistrationError",
    "add_person",
    "add_pgo",
    "add_system",
    "as_record",
    "check_jwks",
    "jwks_from_public_key",
    "list_clients",
    "list_people",
    "rotate_keys",
    "set_client_active",
    "set_person_active",
]
