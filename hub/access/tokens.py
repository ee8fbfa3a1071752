"""Bearer token verification: a JWT in, a :class:`Principal` out, or 401.

Tokens come from the hub's own authorization server (signed with :class:`HubKeys`) or from an
external identity provider configured by issuer + JWKS URL. Every check fails closed:

- the ``alg`` must be one of :data:`VERIFY_ALGS` (asymmetric only: ``none`` and ``HS*`` are
  refused before any key is looked at, so an HMAC "signed" with a public key never verifies);
- the ``kid`` must name a key of the issuer the token claims (an unknown kid makes the verifier
  refetch that issuer's JWKS, at most once per ``jwks_refetch_interval``);
- signature, then ``iss`` (a configured issuer), ``aud``, ``exp``/``nbf``/``iat`` with at most
  60 s skew, a bounded lifetime, and the hub's own claims, consistent for the token's ``kind``.

Verifying costs one signature check (≈ 50 µs for ES256); results are cached per token string
until the token expires (bounded LRU, dropped whenever a key set changes), so the second and
later requests with the same token cost a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key
from starlette.requests import Request

from hub.access.keys import VERIFY_ALGS, HubKeys, jws_registry
from hub.access.principal import PRACTITIONER_SYSTEMS, PRINCIPAL_KINDS, Principal
from hub.fhir.errors import Unauthorized

log = logging.getLogger(__name__)

#: The longest bearer token considered at all (bytes); anything longer is refused unparsed.
MAX_TOKEN_LENGTH = 8192
#: Upper bound on the clock skew tolerated on ``exp``/``nbf``/``iat``.
MAX_SKEW = 60
#: Kinds an external issuer may assert unless configured otherwise (no administrators).
EXTERNAL_KINDS: frozenset[str] = frozenset({"professional", "client", "related"})

_DIGITS = re.compile(r"^[0-9]{1,20}\Z")
_BSN = re.compile(r"^[0-9]{9}\Z")
_URA = re.compile(r"^[0-9]{8}\Z")


@dataclass(frozen=True)
class ExternalIssuer:
    """A trusted external identity provider: its ``iss`` value and where its public keys are."""

    issuer: str
    jwks_url: str
    #: The ``aud`` its tokens must carry; defaults to the hub's audience.
    audience: str | None = None
    #: Which principal kinds its tokens may claim.
    kinds: frozenset[str] = EXTERNAL_KINDS


@dataclass(frozen=True)
class AuthConfig:
    """Everything authentication needs, filled from the hub settings by the app factory.

    Empty ``fhir_base``/``issuer``/``audience`` default to ``base_url + "/fhir"``, ``base_url``
    and ``fhir_base``. ``external_issuers`` accepts ``(issuer, jwks_url)`` pairs too.
    """

    base_url: str = "http://127.0.0.1:8080"
    fhir_base: str = ""
    issuer: str = ""
    audience: str = ""
    key_dir: Path = Path("var/keys")
    key_alg: str = "ES256"
    dev_login: bool = True
    external_issuers: tuple[ExternalIssuer, ...] = ()
    system_token_lifetime: int = 300
    pgo_token_lifetime: int = 3600
    admin_token_lifetime: int = 900
    max_skew: int = MAX_SKEW
    max_assertion_lifetime: int = 300
    max_token_lifetime: int = 86400
    code_lifetime: int = 60
    jwks_cache_ttl: int = 3600
    jwks_refetch_interval: int = 60
    verify_cache_size: int = 10_000

    def __post_init__(self) -> None:
        base = self.base_url.rstrip("/")
        object.__setattr__(self, "base_url", base)
        object.__setattr__(self, "fhir_base", (self.fhir_base or base + "/fhir").rstrip("/"))
        object.__setattr__(self, "issuer", self.issuer or base)
        object.__setattr__(self, "audience", self.audience or self.fhir_base)
        object.__setattr__(self, "key_dir", Path(self.key_dir))
        issuers = tuple(
            i if isinstance(i, ExternalIssuer) else ExternalIssuer(str(i[0]), str(i[1])) for i in self.external_issuers
        )
        object.__setattr__(self, "external_issuers", issuers)
        if not 0 <= self.max_skew <= MAX_SKEW:
            raise ValueError(f"max_skew must be between 0 and {MAX_SKEW} seconds")
        if any(i.issuer == self.issuer for i in issuers):
            raise ValueError("an external issuer cannot use the hub's own issuer value")

    @property
    def token_endpoint(self) -> str:
        return self.base_url + "/auth/token"

    @property
    def authorization_endpoint(self) -> str:
        return self.base_url + "/auth/authorize"

    @property
    def jwks_uri(self) -> str:
        return self.base_url + "/.well-known/jwks.json"

    @property
    def fhir_path(self) -> str:
        """The path part of the FHIR base (``/fhir``), or ``""`` when FHIR is served at the root."""
        return urlsplit(self.fhir_base).path.rstrip("/")


# --- errors -------------------------------------------------------------------------------


def invalid_token(reason: str) -> Unauthorized:
    """A 401 for a bad bearer token, with the RFC 6750 ``WWW-Authenticate`` challenge."""
    # Reasons can quote attacker-chosen values: keep the header printable ASCII without quotes.
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in reason[:200])
    return Unauthorized(
        f"Invalid bearer token: {reason}",
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{safe}"'},
    )


def missing_token() -> Unauthorized:
    """A 401 for a request without credentials (RFC 6750 §3.1: no error code)."""
    return Unauthorized(
        "Authentication required: send 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": 'Bearer realm="zorgnet-hub"'},
    )


# --- JWS parts shared with the token endpoint (client assertions) --------------------------


@dataclass(frozen=True, slots=True)
class SignedJwt:
    """A compact JWS split and decoded, signature not yet checked."""

    obj: jws.CompactSignature
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) and kid else None


def parse_jwt(token: str) -> SignedJwt:
    """Split and decode a compact JWT; refuses unknown algorithms and header extensions.

    Raises ``ValueError`` with the reason (callers turn it into their own 401/400).
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise ValueError("token is empty or too long")
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=jws_registry())
    except (JoseError, ValueError, UnicodeError) as exc:
        raise ValueError("not a compact JWS") from exc
    header = obj.headers()
    alg = header.get("alg")
    if alg not in VERIFY_ALGS:
        raise ValueError(f"algorithm {alg!r} is not accepted")
    if "crit" in header or "b64" in header:
        raise ValueError("JWS extensions (crit, b64) are not accepted")
    try:
        claims = orjson.loads(obj.payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError("payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise ValueError("payload is not a JSON object")
    return SignedJwt(obj, header, claims)


def check_signature(parsed: SignedJwt, key: Key) -> None:
    """Verify the signature with ``key``; ``ValueError`` if it does not verify or does not fit."""
    key_alg = key.alg
    if key_alg and key_alg != parsed.alg and {key_alg, parsed.alg} != {"EdDSA", "Ed25519"}:
        raise ValueError(f"key {parsed.kid} is for {key_alg}, not {parsed.alg}")
    if getattr(key, "key_type", None) not in ("RSA", "EC", "OKP"):
        raise ValueError("symmetric keys are not accepted")
    try:
        ok = jws.validate_compact(parsed.obj, key, registry=jws_registry())
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"key does not fit the algorithm: {exc}") from exc
    if not ok:
        raise ValueError("signature does not verify")


def _numeric(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise ValueError(f"claim {name!r} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"claim {name!r} is not a NumericDate")
    return float(value)


def check_times(
    claims: Mapping[str, Any], now: float, skew: int, *, max_lifetime: int, require_iat: bool = True
) -> float:
    """Check ``exp``/``nbf``/``iat`` against ``now`` with ``skew``; returns ``exp``."""
    exp = _numeric(claims, "exp", True)
    assert exp is not None
    if exp <= now - skew:
        raise ValueError("token has expired")
    nbf = _numeric(claims, "nbf", False)
    if nbf is not None and nbf > now + skew:
        raise ValueError("token is not valid yet (nbf)")
    iat = _numeric(claims, "iat", require_iat)
    if iat is not None and iat > now + skew:
        raise ValueError("token was issued in the future (iat)")
    if exp - (iat if iat is not None else now) > max_lifetime + skew:
        raise ValueError("token lifetime is longer than allowed")
    return exp


def check_audience(claims: Mapping[str, Any], audience: str) -> None:
    aud = claims.get("aud")
    if isinstance(aud, str):
        ok = aud == audience
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        ok = audience in aud
    else:
        raise ValueError("claim 'aud' is missing or malformed")
    if not ok:
        raise ValueError(f"audience does not include {audience}")


# --- claims <-> principal -------------------------------------------------------------------


def _opt_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"claim {name!r} must be a non-empty string")
    return value


def principal_from_claims(claims: Mapping[str, Any], *, kinds: frozenset[str] = PRINCIPAL_KINDS) -> Principal:
    """Map verified claims to a :class:`Principal`, refusing inconsistent combinations."""
    kind = claims.get("kind")
    if kind not in PRINCIPAL_KINDS:
        raise ValueError("claim 'kind' is missing or unknown")
    if kind not in kinds:
        raise ValueError(f"this issuer may not issue {kind} tokens")
    sub = _opt_str(claims, "sub")
    if sub is None:
        raise ValueError("claim 'sub' is missing")
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, str):
        scopes = frozenset(scope.split())
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scopes = frozenset(scope)
    else:
        raise ValueError("claim 'scope' is malformed")
    ura = _opt_str(claims, "ura")
    bsn = _opt_str(claims, "patient_bsn")
    person = _opt_str(claims, "person")
    acting_for = _opt_str(claims, "acting_for")
    practitioner: tuple[str, str] | None = None
    prac = claims.get("practitioner")
    if prac is not None:
        if (
            not isinstance(prac, dict)
            or prac.get("system") not in PRACTITIONER_SYSTEMS
            or not (isinstance(prac.get("value"), str) and _DIGITS.match(prac["value"]))
        ):
            raise ValueError("claim 'practitioner' must be {system: UZI/AGB/BIG, value: digits}")
        practitioner = (prac["system"], prac["value"])
    if ura is not None and not _URA.match(ura):
        raise ValueError("claim 'ura' must be 8 digits")
    for name, value in (("patient_bsn", bsn), ("acting_for", acting_for)):
        if value is not None and not _BSN.match(value):
            raise ValueError(f"claim {name!r} must be a BSN (9 digits)")
    if kind == "professional" and ura is None:
        raise ValueError("a professional token must name its organisation (ura)")
    if kind != "professional" and (ura is not None or practitioner is not None):
        raise ValueError(f"a {kind} token cannot carry ura/practitioner")
    if kind == "client" and (bsn is None or acting_for is not None):
        raise ValueError("a client token needs patient_bsn and no acting_for")
    if kind == "related" and (bsn is None or person is None or acting_for != bsn):
        raise ValueError("a related token needs person, patient_bsn and acting_for = patient_bsn")
    if kind in ("admin", "system", "professional") and (bsn is not None or acting_for is not None):
        raise ValueError(f"a {kind} token cannot carry a patient context")
    exp = claims.get("exp")
    return Principal(
        kind=kind,
        subject=sub,
        scopes=scopes,
        client_id=_opt_str(claims, "client_id"),
        token_id=_opt_str(claims, "jti"),
        organisation_ura=ura,
        practitioner=practitioner,
        patient_bsn=bsn,
        person_id=person,
        acting_for=acting_for,
        relation=_opt_str(claims, "relation"),
        issuer=_opt_str(claims, "iss"),
        expires_at=int(exp) if isinstance(exp, int | float) else None,
    )


def claims_for(principal: Principal) -> dict[str, Any]:
    """The hub claims (everything but iss/aud/exp/iat/jti) that stand for ``principal``."""
    claims: dict[str, Any] = {
        "sub": principal.subject,
        "kind": principal.kind,
        "scope": " ".join(sorted(principal.scopes)),
    }
    if principal.client_id:
        claims["client_id"] = principal.client_id
    if principal.organisation_ura:
        claims["ura"] = principal.organisation_ura
    if principal.practitioner:
        claims["practitioner"] = {"system": principal.practitioner[0], "value": principal.practitioner[1]}
    for name, value in (
        ("patient_bsn", principal.patient_bsn),
        ("person", principal.person_id),
        ("acting_for", principal.acting_for),
        ("relation", principal.relation),
    ):
        if value:
            claims[name] = value
    return claims


# --- remote key sets --------------------------------------------------------------------------


class _RemoteKeys:
    """One external issuer's JWKS: fetched lazily, cached for a TTL, refetched on an unknown kid."""

    def __init__(
        self,
        issuer: ExternalIssuer,
        config: AuthConfig,
        http: Callable[[], httpx.AsyncClient],
        clock: Callable[[], float],
    ) -> None:
        self.issuer = issuer
        self.audience = issuer.audience or config.audience
        self._ttl = config.jwks_cache_ttl
        self._interval = config.jwks_refetch_interval
        self._http = http
        self._clock = clock
        self._keys: dict[str, Key] = {}
        self._fetched = float("-inf")
        self._attempted = float("-inf")
        self._refetched = float("-inf")
        self._generation = 0
        self._lock = asyncio.Lock()
        self.version = 0

    async def get(self, kid: str) -> Key | None:
        now = self._clock()
        fresh = False
        if now - self._fetched > self._ttl and now - self._attempted >= self._interval:
            fresh = await self._fetch(self._generation)
        key = self._keys.get(kid)
        if key is None and not fresh and now - self._refetched >= self._interval:
            self._refetched = now  # an unknown kid refetches at most once per interval
            await self._fetch(self._generation)
            key = self._keys.get(kid)
        return key

    async def _fetch(self, generation: int) -> bool:
        """Fetch the JWKS unless another task did since ``generation`` was read; whether this call did."""
        async with self._lock:
            if self._generation != generation:
                return False
            self._generation += 1
            now = self._attempted = self._clock()
            try:
                response = await self._http().get(self.issuer.jwks_url, headers={"Accept": "application/json"})
                response.raise_for_status()
                keys = public_signing_keys(orjson.loads(response.content))
            except (httpx.HTTPError, orjson.JSONDecodeError, ValueError) as exc:
                log.warning("fetching JWKS of %s from %s failed: %s", self.issuer.issuer, self.issuer.jwks_url, exc)
                return True  # keep what we had: a JWKS outage does not revoke known keys
            if keys != self._keys:
                self.version += 1
            self._keys = keys
            self._fetched = now
            return True


def public_signing_keys(jwks: Any) -> dict[str, Key]:
    """The usable public signing keys of a JWK Set, by kid (symmetric and encryption keys skipped)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("not a JWK Set")
    out: dict[str, Key] = {}
    for data in jwks["keys"]:
        if not isinstance(data, dict) or data.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if data.get("use", "sig") != "sig" or not isinstance(data.get("kid"), str):
            continue
        try:
            key = import_key(data)
            out[data["kid"]] = import_key(key.as_dict(private=False))
        except (JoseError, ValueError, TypeError):
            log.warning("skipping unusable JWK %s", data.get("kid"))
    return out


# --- the verifier -----------------------------------------------------------------------------


class TokenVerifier:
    """Validates bearer tokens; one instance per app (it holds the key and result caches).

    ``http`` is the client used to fetch external JWKS (inject one with ``httpx.MockTransport``
    in tests); without it, one is created on first need and closed by :meth:`aclose`.
    """

    def __init__(
        self,
        config: AuthConfig,
        keys: HubKeys,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._keys = keys
        self._http = http
        self._own_http: httpx.AsyncClient | None = None
        self._clock = clock
        self._remote = {i.issuer: _RemoteKeys(i, config, self._client, clock) for i in config.external_issuers}
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._versions = self._key_versions()

    def _client(self) -> httpx.AsyncClient:
        if self._http is not None:
            return self._http
        if self._own_http is None:
            self._own_http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
        return self._own_http

    async def aclose(self) -> None:
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None

    def _key_versions(self) -> tuple[int, ...]:
        return (self._keys.version, *(r.version for r in self._remote.values()))

    def clear_cache(self) -> None:
        self._cache.clear()

    async def verify(self, token: str) -> Principal:
        """The principal ``token`` stands for; raises :class:`Unauthorized` (401) otherwise."""
        now = self._clock()
        versions = self._key_versions()
        if versions != self._versions:
            self._cache.clear()
            self._versions = versions
        hit = self._cache.get(token)
        if hit is not None:
            principal, exp = hit
            if exp > now - self._config.max_skew:
                self._cache.move_to_end(token)
                return principal
            del self._cache[token]
            raise invalid_token("token has expired")
        try:
            principal, exp = await self._verify(token, now)
        except ValueError as exc:
            raise invalid_token(str(exc)) from None
        if self._key_versions() == self._versions:  # a key set changed underway: do not cache
            self._cache[token] = (principal, exp)
            if len(self._cache) > self._config.verify_cache_size:
                self._cache.popitem(last=False)
        return principal

    async def verify_authorization(self, authorization: str | None) -> Principal:
        """Verify an ``Authorization`` header value (``Bearer <token>``)."""
        if not authorization:
            raise missing_token()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise invalid_token("expected 'Authorization: Bearer <token>'")
        return await self.verify(token.strip())

    async def _verify(self, token: str, now: float) -> tuple[Principal, float]:
        parsed = parse_jwt(token)
        kid = parsed.kid
        if kid is None:
            raise ValueError("token header has no kid")
        iss = parsed.claims.get("iss")
        if not isinstance(iss, str):
            raise ValueError("claim 'iss' is missing")
        kinds: frozenset[str] = PRINCIPAL_KINDS
        key: Key | None
        if iss == self._config.issuer:
            if parsed.header.get("typ") != "at+jwt":
                raise ValueError("not an access token (typ must be at+jwt)")
            key = self._keys.verification_key(kid)
            if key is None and self._keys.refresh(min_interval=5.0):
                key = self._keys.verification_key(kid)
            audience = self._config.audience
        elif (remote := self._remote.get(iss)) is not None:
            key = await remote.get(kid)
            audience, kinds = remote.audience, remote.issuer.kinds
        else:
            raise ValueError(f"issuer {iss!r} is not trusted")
        if key is None:
            raise ValueError(f"unknown key id {kid!r} for issuer {iss}")
        check_signature(parsed, key)
        check_audience(parsed.claims, audience)
        exp = check_times(parsed.claims, now, self._config.max_skew, max_lifetime=self._config.max_token_lifetime)
        return principal_from_claims(parsed.claims, kinds=kinds), exp


def principal_dependency(verifier: TokenVerifier) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the request's :class:`Principal`, or 401."""

    async def current_principal(request: Request) -> Principal:
        return await verifier.verify_authorization(request.headers.get("authorization"))

    return current_principal


__all__ = [
    "EXTERNAL_KINDS",
    "MAX_SKEW",
    "MAX_TOKEN_LENGTH",
    "AuthConfig",
    "ExternalIssuer",
    "SignedJwt",
    "TokenVerifier",
    "check_audience",
    "check_signature",
    "check_times",
    "claims_for",
    "invalid_token",
    "missing_token",
    "parse_jwt",
    "principal_dependency",
    "principal_from_claims",
    "public_signing_keys",
]
