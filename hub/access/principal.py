"""Who is calling: the authenticated identity a verified token stands for, and its SMART scopes.

A :class:`Principal` is what authentication hands to the access decision. It says *who* acts
(a professional system for an organisation, a client, a person acting for a client, an
administrator, an internal system) and the scopes the token carries. Scopes are only the upper
bound the client application asked for and was allowed: whether a read is permitted is decided
by the access layer from care relationships, consent and delegation, never by scopes alone.

Scope syntax is SMART App Launch v2 (``patient/Observation.rs``, ``system/*.cruds``,
``user/Patient.r?identifier=...``) with the v1 forms (``.read``, ``.write``, ``.*``) accepted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["professional", "client", "related", "admin", "system"]
Interaction = Literal["c", "r", "u", "d", "s"]

PRINCIPAL_KINDS: frozenset[str] = frozenset({"professional", "client", "related", "admin", "system"})

#: The scope that marks an administrator token (manage registrations, consents, audits).
ADMIN_SCOPE = "hub/admin"

#: Practitioner identifier systems a professional token may name.
UZI_SYSTEM = "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers"
AGB_SYSTEM = "http://fhir.nl/fhir/NamingSystem/agb-z"
BIG_SYSTEM = "http://fhir.nl/fhir/NamingSystem/big"
PRACTITIONER_SYSTEMS: frozenset[str] = frozenset({UZI_SYSTEM, AGB_SYSTEM, BIG_SYSTEM})

_CONTEXTS = ("patient", "user", "system")
_ORDER = "cruds"
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset(_ORDER)}
_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{0,63})\.([a-z*]+)(?:\?(.+))?$")


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """One parsed resource scope: context, resource type (or ``*``), permissions, optional query."""

    context: str
    resource_type: str
    permissions: frozenset[str]
    query: str | None = None

    def covers(self, resource_type: str, interaction: str) -> bool:
        return (self.resource_type == "*" or self.resource_type == resource_type) and (interaction in self.permissions)

    def render(self) -> str:
        perms = "".join(p for p in _ORDER if p in self.permissions)
        text = f"{self.context}/{self.resource_type}.{perms}"
        return f"{text}?{self.query}" if self.query else text


def parse_scope(scope: str) -> ResourceScope | None:
    """Parse one SMART resource scope; ``None`` for non-resource scopes and malformed ones.

    v2 permissions must be a subsequence of ``cruds`` (each letter once, in that order);
    anything else is not a valid scope and grants nothing.
    """
    m = _SCOPE.match(scope)
    if m is None:
        return None
    context, rtype, perms, query = m.groups()
    if perms in _V1:
        permissions = _V1[perms]
    else:
        pos = -1
        for letter in perms:
            nxt = _ORDER.find(letter)
            if nxt <= pos:
                return None
            pos = nxt
        permissions = frozenset(perms)
    return ResourceScope(context, rtype, permissions, query)


@functools.lru_cache(maxsize=1024)
def parse_scopes(scopes: frozenset[str]) -> tuple[ResourceScope, ...]:
    """All resource scopes in a scope set, parsed once per distinct set (tokens repeat)."""
    out = []
    for s in sorted(scopes):
        parsed = parse_scope(s)
        if parsed is not None:
            out.append(parsed)
    return tuple(out)


def narrow_scopes(requested: Iterable[str], allowed: Iterable[str]) -> frozenset[str]:
    """The scopes to grant: each requested scope cut down to what ``allowed`` permits.

    ``system/*.cruds`` allowed and ``system/Observation.rs`` requested gives
    ``system/Observation.rs``; ``system/*.rs`` allowed and ``system/*.cruds`` requested gives
    ``system/*.rs``; ``system/CarePlan.cruds`` allowed and ``system/*.cruds`` requested gives
    ``system/CarePlan.cruds``. A requested scope with a query is granted only where an allowed scope
    without a query (or with the same query) covers it. Non-resource scopes (``openid``,
    ``launch/patient``, ``hub/admin`` ...) are granted only when allowed verbatim.
    """
    allowed_set = frozenset(allowed)
    allowed_parsed = parse_scopes(allowed_set)
    granted: set[str] = set()
    for scope in requested:
        req = parse_scope(scope)
        if req is None:
            if scope in allowed_set:
                granted.add(scope)
            continue
        for al in allowed_parsed:
            if al.context != req.context:
                continue
            if al.resource_type != "*" and req.resource_type not in ("*", al.resource_type):
                continue
            if al.query is not None and al.query != req.query:
                continue
            perms = req.permissions & al.permissions
            if not perms:
                continue
            rtype = req.resource_type if al.resource_type == "*" else al.resource_type
            granted.add(ResourceScope(req.context, rtype, perms, req.query).render())
    return _without_subsumed(granted)


def _subsumes(a: ResourceScope, b: ResourceScope) -> bool:
    """Whether scope ``a`` grants everything ``b`` grants."""
    return (
        a.context == b.context
        and a.resource_type in ("*", b.resource_type)
        and a.query in (None, b.query)
        and b.permissions <= a.permissions
    )


def _without_subsumed(scopes: set[str]) -> frozenset[str]:
    parsed = {s: parse_scope(s) for s in scopes}
    keep = set(scopes)
    for s, p in parsed.items():
        if p is None:
            continue
        for t, q in parsed.items():
            if t != s and t in keep and q is not None and _subsumes(q, p):
                keep.discard(s)
                break
    return frozenset(keep)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request (built from a verified access token).

    - ``kind``: ``professional`` (a system acting for an organisation, ``organisation_ura`` set),
      ``client`` (a person about themself), ``related`` (a person acting for a client),
      ``admin`` (administrator), ``system`` (a backend client without an organisation).
    - ``patient_bsn``: the client in context: the client themself, or the client acted for.
    - ``acting_for``: for ``related`` the BSN of the client acted for (equals ``patient_bsn``);
      ``None`` otherwise. ``relation`` is the role code under which the person acts (e.g.
      ``24`` wettelijk vertegenwoordiger, ``100001`` mantelzorger) as known when the token was
      issued; delegated categories are *not* in the token: the access layer looks them up on
      every request, so a withdrawal takes effect at once.
    """

    kind: PrincipalKind
    subject: str
    scopes: frozenset[str] = frozenset()
    client_id: str | None = None
    token_id: str | None = None
    organisation_ura: str | None = None
    practitioner: tuple[str, str] | None = None
    patient_bsn: str | None = None
    person_id: str | None = None
    acting_for: str | None = None
    relation: str | None = None
    issuer: str | None = None
    expires_at: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin" and ADMIN_SCOPE in self.scopes

    def allows_scope(self, resource_type: str, interaction: Interaction, *, context: str | None = None) -> bool:
        """Whether an unconditional scope covers this interaction on this type (the upper bound).

        ``interaction`` is one SMART v2 letter: c(reate) r(ead) u(pdate) d(elete) s(earch).
        Scopes carrying a query (``patient/Observation.rs?category=...``) do not count here:
        they allow only part of the type, see :meth:`scope_filters`. ``context`` limits the
        match to ``patient``, ``user`` or ``system`` scopes.
        """
        for sc in parse_scopes(self.scopes):
            if (
                sc.query is None
                and (context is None or sc.context == context)
                and sc.covers(resource_type, interaction)
            ):
                return True
        return False

    def scope_filters(self, resource_type: str, interaction: Interaction) -> tuple[str, ...]:
        """Queries of the conditional scopes covering this interaction (e.g. ``category=vital-signs``)."""
        return tuple(
            sc.query
            for sc in parse_scopes(self.scopes)
            if sc.query is not None and sc.covers(resource_type, interaction)
        )


__all__ = [
    "ADMIN_SCOPE",
    "AGB_SYSTEM",
    "BIG_SYSTEM",
    "PRACTITIONER_SYSTEMS",
    "PRINCIPAL_KINDS",
    "UZI_SYSTEM",
    "Interaction",
    "Principal",
    "PrincipalKind",
    "ResourceScope",
    "narrow_scopes",
    "parse_scope",
    "parse_scopes",
]
