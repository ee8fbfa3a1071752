"""Issuing the hub's own access tokens: what the token endpoint signs and what ``hub token --as`` prints.

Kept apart from the authorization server's HTTP routes so that the command line can sign a token
without loading the web framework (``hub token`` answers in a fraction of a second).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from typing import Any

from hub.access.keys import HubKeys
from hub.access.principal import (
    ADMIN_SCOPE,
    AGB_SYSTEM,
    BIG_SYSTEM,
    UZI_SYSTEM,
    Principal,
    PrincipalKind,
)
from hub.access.tokens import AuthConfig, claims_for, principal_from_claims

_BSN = re.compile(r"^\d{9}$")
_URA = re.compile(r"^\d{8}$")
_NUMBER = re.compile(r"^\d{1,20}$")


def _lifetime(config: AuthConfig, kind: str) -> int:
    if kind in ("client", "related"):
        return config.pgo_token_lifetime
    if kind == "admin":
        return config.admin_token_lifetime
    return config.system_token_lifetime


def issue_token(
    keys: HubKeys,
    config: AuthConfig,
    *,
    kind: PrincipalKind,
    subject: str,
    scopes: frozenset[str] | set[str] | Sequence[str],
    client_id: str | None = None,
    organisation_ura: str | None = None,
    practitioner: tuple[str, str] | None = None,
    patient_bsn: str | None = None,
    person_id: str | None = None,
    acting_for: str | None = None,
    relation: str | None = None,
    lifetime: int | None = None,
    now: float | None = None,
) -> str:
    """Sign an access token for the hub itself (aud = ``config.audience``).

    Claims: ``iss aud sub exp iat jti scope client_id kind`` and, as they apply, ``ura``,
    ``practitioner {system, value}``, ``patient_bsn``, ``person``, ``acting_for``, ``relation``.
    Raises ``ValueError`` for a combination the verifier would refuse (e.g. a client without BSN).
    """
    issued = int(now if now is not None else time.time())
    principal = Principal(
        kind=kind,
        subject=subject,
        scopes=frozenset(scopes),
        client_id=client_id,
        organisation_ura=organisation_ura,
        practitioner=practitioner,
        patient_bsn=patient_bsn,
        person_id=person_id,
        acting_for=acting_for,
        relation=relation,
    )
    claims: dict[str, Any] = {
        "iss": config.issuer,
        "aud": config.audience,
        "iat": issued,
        "exp": issued + (lifetime if lifetime is not None else _lifetime(config, kind)),
        "jti": secrets.token_urlsafe(16),
        **claims_for(principal),
    }
    principal_from_claims(claims)  # the same consistency rules as on the way in
    return keys.sign(claims)


_USAGE = (
    "expected 'admin' | 'client:<BSN>' | 'org:<URA>[:practitioner:<UZI>|:practitioner:<uzi|agb|big>:<n>]'"
    " | 'person:<id>:for:<BSN>[:as:<role>]' | 'system:<name>'"
)


def token_for(
    spec: str,
    config: AuthConfig,
    keys: HubKeys | None = None,
    *,
    scopes: Sequence[str] | None = None,
    lifetime: int | None = None,
) -> str:
    """A valid access token for the identity ``spec`` names (the ``hub token --as`` command).

    ``admin`` · ``client:<BSN>`` · ``org:<URA>[:practitioner:<UZI>]`` (or
    ``:practitioner:agb:<AGB>`` / ``:practitioner:big:<BIG>``) · ``person:<id>:for:<BSN>[:as:<role>]``
    · ``system:<name>``. ``keys`` defaults to the key set in ``config.key_dir`` (created if absent).
    """
    if keys is None:
        keys = HubKeys.load_or_create(config.key_dir, config.key_alg)
    parts = spec.strip().split(":")
    head, rest = parts[0], parts[1:]
    kw: dict[str, Any]
    if head == "admin" and not rest:
        kw = {"kind": "admin", "subject": "admin", "scopes": {ADMIN_SCOPE}}
    elif head == "client" and len(rest) == 1 and _BSN.match(rest[0]):
        kw = {
            "kind": "client",
            "subject": f"bsn:{rest[0]}",
            "patient_bsn": rest[0],
            "scopes": {"patient/*.cruds"},
        }
    elif head == "org" and rest and _URA.match(rest[0]):
        kw = {
            "kind": "professional",
            "subject": f"org:{rest[0]}",
            "organisation_ura": rest[0],
            "scopes": {"system/*.cruds"},
        }
        prac = rest[1:]
        if prac:
            systems = {"uzi": UZI_SYSTEM, "agb": AGB_SYSTEM, "big": BIG_SYSTEM}
            if len(prac) == 2 and prac[0] == "practitioner" and _NUMBER.match(prac[1]):
                kw["practitioner"] = (UZI_SYSTEM, prac[1])
            elif len(prac) == 3 and prac[0] == "practitioner" and prac[1] in systems and _NUMBER.match(prac[2]):
                kw["practitioner"] = (systems[prac[1]], prac[2])
            else:
                raise ValueError(f"bad --as {spec!r}: {_USAGE}")
    elif head == "person" and len(rest) in (3, 5) and rest[0] and rest[1] == "for" and _BSN.match(rest[2]):
        kw = {
            "kind": "related",
            "subject": rest[0],
            "person_id": rest[0],
            "patient_bsn": rest[2],
            "acting_for": rest[2],
            "scopes": {"patient/*.cruds"},
        }
        if len(rest) == 5:
            if rest[3] != "as" or not rest[4]:
                raise ValueError(f"bad --as {spec!r}: {_USAGE}")
            kw["relation"] = rest[4]
    elif head == "system" and len(rest) == 1 and rest[0]:
        kw = {"kind": "system", "subject": rest[0], "scopes": {"system/*.cruds"}}
    else:
        raise ValueError(f"bad --as {spec!r}: {_USAGE}")
    if scopes is not None:
        kw["scopes"] = set(scopes)
    return issue_token(keys, config, client_id="hub-cli", lifetime=lifetime, **kw)


__all__ = ["issue_token", "token_for"]
