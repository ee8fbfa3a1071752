"""The embedded OAuth 2 authorization server (SMART App Launch 2 / SMART Backend Services).

- ``POST /auth/token``
  - ``client_credentials`` with a ``private_key_jwt`` client assertion (RFC 7523): professional
    systems and administrators. The assertion must have iss = sub = client_id, aud = the token
    endpoint, exp at most 5 minutes ahead, an unused jti, and a signature by a key of the
    client's registered JWKS. The organisation (URA) comes from the registration; the assertion
    may name the acting practitioner in a ``practitioner`` claim ``{system, value}`` (UZI/AGB/BIG).
  - ``authorization_code`` with PKCE (S256 only) for PGO apps; codes are single use.
  Errors follow RFC 6749 §5.2: ``invalid_client`` is 401, everything else 400.
- ``GET|POST /auth/authorize``: the development login (only when ``dev_login`` is on).
- ``GET /.well-known/smart-configuration`` (also under the FHIR base) and ``/.well-known/jwks.json``.

This module is the server's logic (:class:`AuthorizationServer`: grants, the login's steps as
:data:`AuthorizeStep` values); its HTTP routes and HTML pages are :mod:`hub.api.routes.oauth`.
Access tokens are JWTs (RFC 9068, ``typ: at+jwt``) signed with the hub key; see
:func:`issue_token` for the claims. :func:`token_for` is the logic behind ``hub token --as ...``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.clients import (
    CodeGrant,
    Delegation,
    DelegationLookup,
    PersonRecord,
    RegisteredClient,
    get_client,
    get_person,
    list_persons,
    prune_assertions,
    remember_assertion,
    store_code,
    take_code,
)
from hub.access.issuing import _lifetime, issue_token, token_for
from hub.access.keys import VERIFY_ALGS, HubKeys
from hub.access.principal import (
    ADMIN_SCOPE,
    PRACTITIONER_SYSTEMS,
    PrincipalKind,
    narrow_scopes,
    parse_scope,
)
from hub.access.tokens import (
    AuthConfig,
    check_audience,
    check_signature,
    check_times,
    parse_jwt,
    public_signing_keys,
)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: Opens the write transaction one exchange works in.
Transaction = Callable[[], AbstractAsyncContextManager[AsyncConnection]]
#: Resolves a client's BSN to the id of their Patient resource (for the SMART ``patient`` context).
PatientIdLookup = Callable[[AsyncConnection, str], Awaitable[str | None]]

_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_BSN = re.compile(r"^[0-9]{9}\Z")
_NUMBER = re.compile(r"^[0-9]{1,20}\Z")
_AUTH_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "aud",
)
_PGO_EXTRA_SCOPES = frozenset({"launch/patient"})


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer of the token endpoint."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = 401 if error == "invalid_client" else 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def smart_configuration(config: AuthConfig) -> dict[str, Any]:
    """The SMART App Launch 2 discovery document."""
    grants = ["client_credentials"]
    capabilities = [
        "client-confidential-asymmetric",
        "permission-v1",
        "permission-v2",
        "permission-patient",
        "permission-user",
    ]
    doc: dict[str, Any] = {
        "issuer": config.issuer,
        "jwks_uri": config.jwks_uri,
        "token_endpoint": config.token_endpoint,
    }
    if config.dev_login:
        doc["authorization_endpoint"] = config.authorization_endpoint
        grants.insert(0, "authorization_code")
        capabilities += ["launch-standalone", "client-public", "context-standalone-patient", "authorize-post"]
    doc |= {
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": sorted(VERIFY_ALGS),
        "scopes_supported": [
            "system/*.cruds",
            "system/*.rs",
            "user/*.cruds",
            "user/*.rs",
            "patient/*.cruds",
            "patient/*.rs",
            "launch/patient",
            ADMIN_SCOPE,
        ],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": sorted(capabilities),
    }
    return doc


def pkce_challenge(verifier: str) -> str:
    """BASE64URL(SHA-256(verifier)) without padding (RFC 7636 S256)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class Form(Protocol):
    """Form or query parameters, each name with its values (Starlette's FormData and QueryParams are)."""

    def getlist(self, key: str) -> list[Any]: ...


@dataclass(frozen=True)
class AuthzRequest:
    client: RegisteredClient
    redirect_uri: str
    state: str
    code_challenge: str
    scopes: frozenset[str]
    fields: dict[str, str]


# --- what one step of the development login answers (hub.api.routes.oauth renders it)


@dataclass(frozen=True)
class ErrorPage:
    """An authorization request so broken it must not be redirected (unknown client/redirect): 400."""

    message: str


@dataclass(frozen=True)
class LoginPage:
    """Who logs in: a person of the registry, or a client by BSN."""

    fields: dict[str, str]
    client_name: str
    persons: Sequence[PersonRecord]
    error: str | None = None


@dataclass(frozen=True)
class ConsentPage:
    """For whom the person acts, and which scopes they approve (``error``: a 400 asking again)."""

    fields: dict[str, str]
    client_name: str
    who: PersonRecord
    options: Sequence[Delegation]
    scopes: list[str]
    error: str | None = None


@dataclass(frozen=True)
class Redirect:
    """Back to the app's redirect URI, with a code or an error (303)."""

    url: str


AuthorizeStep = ErrorPage | LoginPage | ConsentPage | Redirect


class _KeyNeeded(Exception):
    """A client assertion names a key the hub has not seen, published at the client's JWKS URL: the
    grant is tried again once the key is fetched, outside any database transaction."""

    def __init__(self, url: str, kid: str) -> None:
        super().__init__(url, kid)
        self.url, self.kid = url, kid


#: Keys fetched from clients' JWKS URLs for one token request: (url, kid) -> key (None: not published).
RemoteKeys = dict[tuple[str, str], Any]


class _PageError(Exception):
    """An authorization request so broken it must not be redirected (unknown client/redirect)."""


class _RedirectError(Exception):
    def __init__(self, redirect_uri: str, error: str, description: str) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.error = error
        self.description = description


def single(form: Form, name: str) -> str | None:
    """One form/query value; parameters sent twice are refused (RFC 6749 §3.1, §3.2)."""
    values = form.getlist(name)
    if len(values) > 1:
        raise OAuthError("invalid_request", f"parameter {name} given more than once")
    if not values:
        return None
    value = values[0]
    return value if isinstance(value, str) else None


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v]
    return urlunsplit(parts._replace(query=urlencode(query)))


class AuthorizationServer:
    """The token endpoint's grants and the development login's steps, over the registration tables."""

    def __init__(
        self,
        config: AuthConfig,
        keys: HubKeys,
        delegations: DelegationLookup,
        patient_id_for_bsn: PatientIdLookup | None,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.keys = keys
        self.delegations = delegations
        self.patient_id_for_bsn = patient_id_for_bsn
        self.clock = clock
        self.last_prune = float("-inf")

    async def _remote_key(self, jwks_url: str, kid: str) -> Any:
        """A key a client publishes at its registered JWKS URL (fetched per unknown kid, 5 s limit)."""
        import httpx

        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False) as http:
                response = await http.get(jwks_url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return public_signing_keys(response.json()).get(kid)
        except (httpx.HTTPError, ValueError) as exc:
            raise OAuthError(
                "invalid_client", f"client assertion: the client's JWKS could not be fetched ({exc})"
            ) from None

    # --- token endpoint

    async def token(self, tx: Transaction, form: Form) -> dict[str, Any]:
        """The token response of one grant; OAuthError for an RFC 6749 §5.2 error.

        A key published at a client's JWKS URL is fetched between two tries of the grant, never
        inside its transaction: a slow or unreachable client must not hold the database's write
        lock (on SQLite, every writer's) for the length of an HTTP request."""
        grant_type = single(form, "grant_type")
        remote: RemoteKeys = {}
        for _ in range(2):
            try:
                if grant_type == "client_credentials":
                    return await self._client_credentials(tx, form, remote)
                if grant_type == "authorization_code":
                    return await self._authorization_code(tx, form, remote)
            except _KeyNeeded as need:
                remote[(need.url, need.kid)] = await self._remote_key(need.url, need.kid)
                continue
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        raise AssertionError("a grant asked for the same key twice")  # the second try has it

    async def _authenticate(
        self, conn: AsyncConnection, form: Form, now: float, kinds: frozenset[str], remote: RemoteKeys
    ) -> tuple[RegisteredClient, dict[str, Any]]:
        """Verify a private_key_jwt client assertion and burn its jti; the client it proves."""
        if single(form, "client_assertion_type") != JWT_BEARER:
            raise OAuthError("invalid_client", f"client_assertion_type must be {JWT_BEARER}")
        assertion = single(form, "client_assertion") or ""
        try:
            parsed = parse_jwt(assertion)
        except ValueError as exc:
            raise OAuthError("invalid_client", f"client assertion: {exc}") from None
        claims = parsed.claims
        client_id = claims.get("iss")
        if not isinstance(client_id, str) or claims.get("sub") != client_id:
            raise OAuthError("invalid_client", "client assertion: iss and sub must both be the client_id")
        form_client = single(form, "client_id")
        if form_client is not None and form_client != client_id:
            raise OAuthError("invalid_client", "client_id does not match the assertion")
        client = await get_client(conn, client_id)
        if client is None or not client.active or client.kind not in kinds:
            raise OAuthError("invalid_client", f"unknown or inactive client {client_id!r} for this grant")
        key = client.keys().get(parsed.kid or "")
        if key is None and client.jwks and isinstance(client.jwks.get("jwks_url"), str):
            wanted = (client.jwks["jwks_url"], parsed.kid or "")
            if wanted not in remote:
                raise _KeyNeeded(*wanted)  # fetched outside this transaction, then tried again
            key = remote[wanted]
        if key is None:
            raise OAuthError("invalid_client", f"client assertion: unknown key id {parsed.kid!r}")
        jti = claims.get("jti")
        try:
            check_signature(parsed, key)
            check_audience(claims, self.config.token_endpoint)
            skew = self.config.max_skew
            limit = self.config.max_assertion_lifetime
            exp_claim = claims.get("exp")
            if isinstance(exp_claim, int | float) and exp_claim > now + limit + skew:
                raise ValueError(f"exp is more than {limit} s ahead")
            exp = check_times(claims, now, skew, max_lifetime=limit, require_iat=False)
            if not isinstance(jti, str) or not 0 < len(jti) <= 255:
                raise ValueError("claim 'jti' is missing")
        except ValueError as exc:
            raise OAuthError("invalid_client", f"client assertion: {exc}") from None
        if not await remember_assertion(conn, client_id, jti, int((exp + skew) * 1_000_000)):
            raise OAuthError("invalid_client", "client assertion: jti was used before (replay)")
        if now - self.last_prune > 60:
            self.last_prune = now
            await prune_assertions(conn, int((now - 2 * skew) * 1_000_000))
        return client, claims

    async def _client_credentials(self, tx: Transaction, form: Form, remote: RemoteKeys) -> dict[str, Any]:
        now = self.clock()
        async with tx() as conn:
            client, claims = await self._authenticate(conn, form, now, frozenset({"system", "admin"}), remote)
        practitioner = _practitioner_claim(claims)
        requested = (single(form, "scope") or "").split() or sorted(client.allowed_scopes)
        scopes = narrow_scopes(requested, client.allowed_scopes)
        if not scopes:
            raise OAuthError("invalid_scope", "none of the requested scopes is allowed for this client")
        kind: PrincipalKind
        if client.kind == "admin":
            kind = "admin"
        elif client.organisation_ura:
            kind = "professional"
        else:
            kind = "system"
        if practitioner is not None and kind != "professional":
            raise OAuthError("invalid_request", "only a client of an organisation can name a practitioner")
        lifetime = _lifetime(self.config, kind)
        token = issue_token(
            self.keys,
            self.config,
            kind=kind,
            subject=client.client_id,
            scopes=scopes,
            client_id=client.client_id,
            organisation_ura=client.organisation_ura,
            practitioner=practitioner,
            lifetime=lifetime,
            now=now,
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(sorted(scopes)),
        }

    async def _authorization_code(self, tx: Transaction, form: Form, remote: RemoteKeys) -> dict[str, Any]:
        now = self.clock()
        code = single(form, "code")
        redirect_uri = single(form, "redirect_uri")
        verifier = single(form, "code_verifier")
        client_id = single(form, "client_id")
        if not code or not redirect_uri or not verifier:
            raise OAuthError("invalid_request", "code, redirect_uri and code_verifier are required")
        failure: OAuthError | None = None
        patient_id: str | None = None
        grant: CodeGrant | None = None
        async with tx() as conn:  # the code is burnt even when the exchange fails
            grant, first_use = await take_code(conn, code)
            try:
                if grant is None:
                    raise OAuthError("invalid_grant", "unknown authorization code")
                if not first_use:
                    raise OAuthError("invalid_grant", "authorization code was already used")
                if grant.expires < now * 1_000_000:
                    raise OAuthError("invalid_grant", "authorization code has expired")
                if single(form, "client_assertion") is not None:
                    client, _ = await self._authenticate(conn, form, now, frozenset({"pgo"}), remote)
                    client_id = client.client_id
                else:
                    found = await get_client(conn, client_id or "")
                    if found is None or not found.active or found.kind != "pgo":
                        raise OAuthError("invalid_client", "unknown client")
                    if found.jwks:
                        raise OAuthError("invalid_client", "this client must authenticate with private_key_jwt")
                if client_id != grant.client_id:
                    raise OAuthError("invalid_grant", "authorization code was issued to another client")
                if redirect_uri != grant.redirect_uri:
                    raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
                if not _VERIFIER.match(verifier) or not hmac.compare_digest(
                    pkce_challenge(verifier), grant.code_challenge
                ):
                    raise OAuthError("invalid_grant", "PKCE code_verifier does not match the code_challenge")
                if self.patient_id_for_bsn is not None:
                    patient_id = await self.patient_id_for_bsn(conn, grant.grant["patient_bsn"])
            except OAuthError as exc:
                failure = exc
        if failure is not None:
            raise failure
        assert grant is not None
        g = grant.grant
        scopes = frozenset(str(g["scope"]).split())
        lifetime = self.config.pgo_token_lifetime
        token = issue_token(
            self.keys,
            self.config,
            kind=g["kind"],
            subject=g["person"],
            scopes=scopes,
            client_id=grant.client_id,
            patient_bsn=g["patient_bsn"],
            person_id=g["person"],
            acting_for=g.get("acting_for"),
            relation=g.get("relation"),
            lifetime=lifetime,
            now=now,
        )
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(sorted(scopes)),
            "patient_bsn": g["patient_bsn"],
        }
        if patient_id:
            body["patient"] = patient_id
        return body

    # --- authorization endpoint (development login)

    async def authorize(self, tx: Transaction, params: Form, approved: list[str]) -> AuthorizeStep:
        """One step of the development login: the login page, the consent page, or the redirect back."""
        try:
            fields = {
                name: single(params, name) or ""
                for name in (*_AUTH_FIELDS, "step", "person_id", "login_bsn", "act_for", "decision")
            }
        except OAuthError as exc:
            return ErrorPage(exc.description)
        async with tx() as conn:
            try:
                req = await self._authorization_request(conn, fields)
            except _PageError as exc:
                return ErrorPage(str(exc))
            except _RedirectError as exc:
                return self._redirect(exc.redirect_uri, exc.error, exc.description, fields["state"])
            return await self._login_steps(conn, req, fields, approved)

    async def _authorization_request(self, conn: AsyncConnection, p: Mapping[str, str]) -> AuthzRequest:
        client = await get_client(conn, p["client_id"]) if p["client_id"] else None
        if client is None or not client.active or client.kind != "pgo":
            raise _PageError("Unknown client: this app is not registered as a PGO app.")
        redirect_uri = p["redirect_uri"] or (client.redirect_uris[0] if len(client.redirect_uris) == 1 else "")
        if redirect_uri not in client.redirect_uris:
            raise _PageError("The redirect_uri is not registered for this app.")
        if p["response_type"] != "code":
            raise _RedirectError(redirect_uri, "unsupported_response_type", "response_type must be code")
        if p["code_challenge_method"] != "S256" or not _CHALLENGE.match(p["code_challenge"]):
            raise _RedirectError(redirect_uri, "invalid_request", "PKCE is required: code_challenge with method S256")
        if p["aud"] and p["aud"].rstrip("/") != self.config.fhir_base:
            raise _RedirectError(redirect_uri, "invalid_request", f"aud must be {self.config.fhir_base}")
        requested = [
            s
            for s in p["scope"].split()
            if s in _PGO_EXTRA_SCOPES or ((parsed := parse_scope(s)) is not None and parsed.context == "patient")
        ]
        scopes = narrow_scopes(requested, client.allowed_scopes)
        if not scopes - _PGO_EXTRA_SCOPES:
            raise _RedirectError(
                redirect_uri, "invalid_scope", "no patient/ scope that this app may be granted was requested"
            )
        fields = {k: p[k] for k in _AUTH_FIELDS} | {"redirect_uri": redirect_uri}
        return AuthzRequest(client, redirect_uri, p["state"], p["code_challenge"], scopes, fields)

    async def _who(self, conn: AsyncConnection, p: Mapping[str, str]) -> PersonRecord | None:
        person_id = p["person_id"]
        bsn = p["login_bsn"] or (person_id[4:] if person_id.startswith("bsn:") else "")
        if bsn:
            return PersonRecord(f"bsn:{bsn}", f"BSN {bsn}", bsn) if _BSN.match(bsn) else None
        return await get_person(conn, person_id) if person_id else None

    async def _login_steps(
        self,
        conn: AsyncConnection,
        req: AuthzRequest,
        p: Mapping[str, str],
        approved: list[str],
    ) -> AuthorizeStep:
        name = req.client.name or req.client.client_id
        step = p["step"]
        who = await self._who(conn, p) if step in ("login", "approve") else None
        if who is None:
            persons = await list_persons(conn)
            error = "Choose a person or enter a valid BSN." if step else None
            return LoginPage(req.fields, name, persons, error)
        now_us = int(self.clock() * 1_000_000)
        options = list(await self.delegations(conn, who.person_id, now_us))
        scopes = sorted(req.scopes)
        if step == "login":
            return ConsentPage(req.fields, name, who, options, scopes)
        if p["decision"] != "approve":
            return self._redirect(req.redirect_uri, "access_denied", "the person did not approve", req.state)
        act_for = p["act_for"]
        chosen: Delegation | None = next((d for d in options if d.bsn == act_for), None)
        grant: dict[str, Any]
        if act_for == "self" and who.bsn:
            grant = {"kind": "client", "person": who.person_id, "patient_bsn": who.bsn}
        elif chosen is not None:
            grant = {
                "kind": "related",
                "person": who.person_id,
                "patient_bsn": chosen.bsn,
                "acting_for": chosen.bsn,
                "relation": chosen.relation,
            }
        else:
            return ConsentPage(req.fields, name, who, options, scopes, "Choose for whom you act.")
        granted = req.scopes & frozenset(approved)
        if not granted - _PGO_EXTRA_SCOPES:
            return ConsentPage(req.fields, name, who, options, scopes, "Approve at least one scope, or deny.")
        grant["scope"] = " ".join(sorted(granted))
        code = secrets.token_urlsafe(32)
        expires = int((self.clock() + self.config.code_lifetime) * 1_000_000)
        await store_code(
            conn, code, CodeGrant(req.client.client_id, req.redirect_uri, req.code_challenge, grant, expires)
        )
        return self._redirect(req.redirect_uri, "", "", req.state, code=code)

    def _redirect(self, redirect_uri: str, error: str, description: str, state: str, *, code: str = "") -> Redirect:
        params = {"code": code} if code else {"error": error, "error_description": description}
        params |= {"state": state, "iss": self.config.issuer}
        return Redirect(_with_query(redirect_uri, params))


def _practitioner_claim(claims: Mapping[str, Any]) -> tuple[str, str] | None:
    prac = claims.get("practitioner")
    if prac is None:
        return None
    if (
        isinstance(prac, dict)
        and prac.get("system") in PRACTITIONER_SYSTEMS
        and isinstance(prac.get("value"), str)
        and _NUMBER.match(prac["value"])
    ):
        return prac["system"], prac["value"]
    raise OAuthError("invalid_request", "practitioner must be {system: UZI/AGB/BIG system, value: digits}")


__all__ = [
    "JWT_BEARER",
    "AuthorizationServer",
    "AuthorizeStep",
    "ConsentPage",
    "ErrorPage",
    "Form",
    "LoginPage",
    "OAuthError",
    "PatientIdLookup",
    "Redirect",
    "Transaction",
    "issue_token",
    "pkce_challenge",
    "smart_configuration",
    "token_for",
]
