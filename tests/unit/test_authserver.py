"""The embedded authorization server end to end: a FastAPI app with the auth router, in-memory SQLite.

client_credentials with private_key_jwt, authorization_code + PKCE through the development login,
discovery documents, and every assertion/code attack answered as RFC 6749 §5.2 says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

import hub.access.tables  # noqa: F401  (registers the auth tables on the shared metadata)
from hub.access.authserver import pkce_challenge
from hub.access.clients import (
    Delegation,
    PersonRecord,
    RegisteredClient,
    add_delegation,
    add_person,
    get_client,
    register_client,
)
from hub.access.keys import HubKeys
from hub.access.principal import UZI_SYSTEM, Principal
from hub.access.tokens import AuthConfig, TokenVerifier, principal_dependency
from hub.api.routes.oauth import build_auth_router
from hub.fhir.errors import FhirError
from hub.store.tables import metadata

BASE = "http://hub.test"
TOKEN_URL = f"{BASE}/auth/token"
URA = "12345678"
CLIENT_BSN = "999911120"
OTHER_BSN = "999911132"
REDIRECT = "https://app.example.org/callback"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


class Env:
    """One app with the auth router plus a ``/whoami`` route behind the bearer dependency."""

    def __init__(self, engine: AsyncEngine, config: AuthConfig, keys: HubKeys, clock: Clock) -> None:
        self.engine = engine
        self.config = config
        self.keys = keys
        self.clock = clock
        self.ecd_key: Key = ECKey.generate_key("P-256", parameters={"kid": "ecd-key-1"})
        self.admin_key: Key = RSAKey.generate_key(2048, parameters={"kid": "admin-1"})
        self.pgo_key: Key = ECKey.generate_key("P-256", parameters={"kid": "pgo-conf-1"})

        async def patient_id(conn: AsyncConnection, bsn: str) -> str | None:
            return f"pat-{bsn}"

        self.verifier = TokenVerifier(config, keys, clock=clock)
        app = FastAPI()
        app.include_router(
            build_auth_router(config, keys, lambda request: engine.begin(), patient_id_for_bsn=patient_id, clock=clock)
        )

        @app.exception_handler(FhirError)
        async def fhir_error(request: Request, exc: FhirError) -> JSONResponse:
            return JSONResponse(exc.outcome(), status_code=exc.status, headers=exc.headers)

        @app.get("/fhir/whoami")
        async def whoami(p: Principal = Depends(principal_dependency(self.verifier))) -> dict[str, Any]:
            return {
                "kind": p.kind,
                "subject": p.subject,
                "ura": p.organisation_ura,
                "practitioner": list(p.practitioner) if p.practitioner else None,
                "patient_bsn": p.patient_bsn,
                "person": p.person_id,
                "acting_for": p.acting_for,
                "relation": p.relation,
                "scopes": sorted(p.scopes),
                "client_id": p.client_id,
            }

        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)

    async def seed(self) -> None:
        async with self.engine.begin() as conn:
            await register_client(
                conn,
                RegisteredClient(
                    "ecd",
                    "system",
                    "Wijkverpleging ECD",
                    organisation_ura=URA,
                    jwks={"keys": [self.ecd_key.as_dict(private=False)]},
                    allowed_scopes=frozenset({"system/*.rs", "system/CarePlan.cruds", "system/Task.cruds"}),
                ),
            )
            await register_client(
                conn,
                RegisteredClient(
                    "outbox",
                    "system",
                    "Internal worker",
                    jwks={"keys": [self.ecd_key.as_dict(private=False)]},
                    allowed_scopes=frozenset({"system/*.cruds"}),
                ),
            )
            await register_client(
                conn,
                RegisteredClient(
                    "console",
                    "admin",
                    "Admin console",
                    jwks={"keys": [self.admin_key.as_dict(private=False)]},
                    allowed_scopes=frozenset({"hub/admin", "system/Organization.cruds"}),
                ),
            )
            await register_client(
                conn,
                RegisteredClient(
                    "mijn-app",
                    "pgo",
                    "Mijn Zorgnet",
                    redirect_uris=(REDIRECT,),
                    allowed_scopes=frozenset({"patient/*.rs", "patient/Goal.cruds", "launch/patient"}),
                ),
            )
            await register_client(
                conn,
                RegisteredClient(
                    "conf-app",
                    "pgo",
                    "Confidential PGO",
                    redirect_uris=(REDIRECT,),
                    jwks={"keys": [self.pgo_key.as_dict(private=False)]},
                    allowed_scopes=frozenset({"patient/*.rs"}),
                ),
            )
            await add_person(conn, PersonRecord("p-anna", "Anna de Vries", CLIENT_BSN))
            await add_person(conn, PersonRecord("p-bert", "Bert (mantelzorger)", None))
            await add_delegation(conn, "p-bert", Delegation(CLIENT_BSN, "100001", ("agenda", "zorgplan")))
            now_us = int(self.clock.now * 1_000_000)
            await add_delegation(
                conn,
                "p-bert",
                Delegation(OTHER_BSN, "24", ("acp",)),
                start_us=now_us - 10**12,
                end_us=now_us - 10**6,
            )  # expired

    # --- helpers

    def assertion(self, client_id: str = "ecd", key: Key | None = None, alg: str = "ES256", **over: Any) -> str:
        key = key or self.ecd_key
        now = int(self.clock.now)
        claims: dict[str, Any] = {
            "iss": client_id,
            "sub": client_id,
            "aud": TOKEN_URL,
            "iat": now,
            "exp": now + 240,
            "jti": secrets.token_hex(8),
        }
        claims.update(over)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])

    async def client_credentials(
        self, assertion: str, scope: str | None = "system/*.rs", **extra: str
    ) -> httpx.Response:
        data = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
            **extra,
        }
        if scope is not None:
            data["scope"] = scope
        return await self.http.post("/auth/token", data=data)

    async def whoami(self, token: str) -> dict[str, Any]:
        r = await self.http.get("/fhir/whoami", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def authorize_params(self, verifier: str, **over: str) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": "mijn-app",
            "redirect_uri": REDIRECT,
            "scope": "launch/patient patient/*.rs patient/Goal.cruds patient/Observation.c openid",
            "state": "st-123",
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            "aud": f"{BASE}/fhir",
        }
        params.update(over)
        return params

    async def login_and_approve(
        self, verifier: str, person_id: str, act_for: str, scopes: list[str] | None = None, **over: str
    ) -> httpx.Response:
        params = self.authorize_params(verifier, **over)
        page = await self.http.get("/auth/authorize", params=params)
        assert page.status_code == 200, page.text
        step1 = await self.http.post("/auth/authorize", data={**params, "step": "login", "person_id": person_id})
        assert step1.status_code == 200, step1.text
        offered = re.findall(r"name='scope_ok' value='([^']+)'", step1.text)
        data: dict[str, Any] = {
            **params,
            "step": "approve",
            "person_id": person_id,
            "act_for": act_for,
            "decision": "approve",
            "scope_ok": scopes if scopes is not None else offered,
        }
        return await self.http.post("/auth/authorize", data=data)

    async def redeem(self, code: str, verifier: str, **over: str) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": "mijn-app",
            **over,
        }
        return await self.http.post("/auth/token", data=data)


@pytest.fixture
async def env(tmp_path: Any) -> AsyncIterator[Env]:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:", poolclass=StaticPool)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    e = Env(engine, AuthConfig(base_url=BASE, key_dir=tmp_path), HubKeys.in_memory(), Clock())
    await e.seed()
    yield e
    await e.http.aclose()
    await engine.dispose()


def code_from(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def oauth_error(response: httpx.Response, status: int, error: str, text: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert text in body["error_description"]
    assert response.headers["cache-control"] == "no-store"


# --- discovery ----------------------------------------------------------------------------------------


async def test_smart_configuration(env: Env) -> None:
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        r = await env.http.get(path)
        assert r.status_code == 200
        doc = r.json()
        assert doc["issuer"] == BASE
        assert doc["token_endpoint"] == TOKEN_URL
        assert doc["authorization_endpoint"] == f"{BASE}/auth/authorize"
        assert doc["jwks_uri"] == f"{BASE}/.well-known/jwks.json"
        assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert {"RS384", "ES384", "ES256", "EdDSA"} <= set(doc["token_endpoint_auth_signing_alg_values_supported"])
        assert "HS256" not in doc["token_endpoint_auth_signing_alg_values_supported"]
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["response_types_supported"] == ["code"]
        assert set(doc["grant_types_supported"]) == {"client_credentials", "authorization_code"}
        assert {"permission-v2", "client-confidential-asymmetric", "launch-standalone"} <= set(doc["capabilities"])
        assert "system/*.cruds" in doc["scopes_supported"]


async def test_jwks_serves_public_keys_only(env: Env) -> None:
    r = await env.http.get("/.well-known/jwks.json")
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert [k["kid"] for k in keys] == [env.keys.active_kid]
    assert all("d" not in k for k in keys)


async def test_dev_login_off_removes_the_authorization_endpoint(tmp_path: Any) -> None:
    config = AuthConfig(base_url=BASE, key_dir=tmp_path, dev_login=False)
    app = FastAPI()
    app.include_router(build_auth_router(config, HubKeys.in_memory(), lambda request: None))  # type: ignore[arg-type,return-value]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        assert (await http.get("/auth/authorize", params={"client_id": "x"})).status_code == 404
        assert (await http.post("/auth/authorize", data={"client_id": "x"})).status_code == 404
        doc = (await http.get("/.well-known/smart-configuration")).json()
    assert "authorization_endpoint" not in doc
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert "launch-standalone" not in doc["capabilities"]


# --- client_credentials -------------------------------------------------------------------------------


async def test_client_credentials_end_to_end(env: Env) -> None:
    assertion = env.assertion(practitioner={"system": UZI_SYSTEM, "value": "123456789"})
    r = await env.client_credentials(assertion, scope="system/*.cruds system/Patient.r")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300  # noqa: S105
    # narrowed to the registration, without scopes another granted scope already covers
    assert set(body["scope"].split()) == {"system/*.rs", "system/CarePlan.cruds", "system/Task.cruds"}
    assert r.headers["cache-control"] == "no-store"
    me = await env.whoami(body["access_token"])
    assert me == {
        "kind": "professional",
        "subject": "ecd",
        "ura": URA,
        "practitioner": [UZI_SYSTEM, "123456789"],
        "patient_bsn": None,
        "person": None,
        "acting_for": None,
        "relation": None,
        "scopes": sorted(body["scope"].split()),
        "client_id": "ecd",
    }


async def test_client_credentials_rs384_without_scope_gets_allowed_scopes(env: Env) -> None:
    r = await env.client_credentials(env.assertion("console", env.admin_key, "RS384"), scope=None)
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == 900
    me = await env.whoami(r.json()["access_token"])
    assert me["kind"] == "admin" and me["scopes"] == ["hub/admin", "system/Organization.cruds"]


async def test_system_client_without_organisation(env: Env) -> None:
    r = await env.client_credentials(env.assertion("outbox"), scope="system/*.cruds")
    assert r.status_code == 200, r.text
    me = await env.whoami(r.json()["access_token"])
    assert me["kind"] == "system" and me["ura"] is None
    r = await env.client_credentials(env.assertion("outbox", practitioner={"system": UZI_SYSTEM, "value": "1"}))
    oauth_error(r, 400, "invalid_request", "organisation")


async def test_replayed_client_assertion_is_rejected(env: Env) -> None:
    assertion = env.assertion()
    assert (await env.client_credentials(assertion)).status_code == 200
    oauth_error(await env.client_credentials(assertion), 401, "invalid_client", "replay")


async def test_assertion_with_wrong_audience_is_rejected(env: Env) -> None:
    for aud in (f"{BASE}/fhir", f"{BASE}/auth/token/", "https://evil.example.org/token", [f"{BASE}/fhir"]):
        oauth_error(await env.client_credentials(env.assertion(aud=aud)), 401, "invalid_client", "audience")


@pytest.mark.parametrize(
    ("over", "text"),
    [
        ({"exp": None}, "'exp' is missing"),
        ({"jti": None}, "'jti' is missing"),
        ({"sub": "other"}, "iss and sub"),
        ({"iss": "other", "sub": "other"}, "unknown or inactive client"),
        ({"iss": "mijn-app", "sub": "mijn-app"}, "unknown or inactive client"),  # a PGO app has no such grant
    ],
)
async def test_bad_assertion_claims_are_rejected(env: Env, over: dict[str, Any], text: str) -> None:
    oauth_error(await env.client_credentials(env.assertion(**over)), 401, "invalid_client", text)


async def test_assertion_time_checks(env: Env) -> None:
    now = int(env.clock.now)
    oauth_error(
        await env.client_credentials(env.assertion(iat=now - 900, exp=now - 61)),
        401,
        "invalid_client",
        "expired",
    )
    oauth_error(await env.client_credentials(env.assertion(exp=now + 600)), 401, "invalid_client", "ahead")
    oauth_error(await env.client_credentials(env.assertion(nbf=now + 120)), 401, "invalid_client", "not valid yet")


async def test_assertion_signature_attacks(env: Env) -> None:
    impostor = ECKey.generate_key("P-256", parameters={"kid": str(env.ecd_key.kid)})
    oauth_error(
        await env.client_credentials(env.assertion(key=impostor)),
        401,
        "invalid_client",
        "signature does not verify",
    )
    unknown = ECKey.generate_key("P-256", parameters={"kid": "nobody"})
    oauth_error(await env.client_credentials(env.assertion(key=unknown)), 401, "invalid_client", "unknown key id")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(env.clock.now)
    claims = {"iss": "ecd", "sub": "ecd", "aud": TOKEN_URL, "exp": now + 60, "jti": "x1"}
    body = f"{b64(json.dumps(claims).encode())}"
    none = f"{b64(json.dumps({'alg': 'none', 'kid': 'ecd-key-1'}).encode())}.{body}."
    oauth_error(await env.client_credentials(none), 401, "invalid_client", "not accepted")
    secret = json.dumps(env.ecd_key.as_dict(private=False)).encode()
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': 'ecd-key-1'}).encode())}.{body}"
    hs = f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    oauth_error(await env.client_credentials(hs), 401, "invalid_client", "not accepted")


async def test_token_endpoint_request_errors(env: Env) -> None:
    oauth_error(
        await env.client_credentials(env.assertion(), client_assertion_type="urn:other"),
        401,
        "invalid_client",
        "client_assertion_type",
    )
    oauth_error(await env.client_credentials("not-a-jwt"), 401, "invalid_client", "compact JWS")
    oauth_error(
        await env.client_credentials(env.assertion(), client_id="someone-else"),
        401,
        "invalid_client",
        "client_id",
    )
    oauth_error(await env.client_credentials(env.assertion(), scope="patient/*.rs"), 400, "invalid_scope")
    r = await env.http.post("/auth/token", data={"grant_type": "password", "username": "a", "password": "b"})
    oauth_error(r, 400, "unsupported_grant_type")
    r = await env.http.post(
        "/auth/token",
        content="grant_type=client_credentials&grant_type=authorization_code",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    oauth_error(r, 400, "invalid_request", "more than once")


async def test_inactive_client_is_rejected(env: Env) -> None:
    async with env.engine.begin() as conn:
        client = await get_client(conn, "ecd")
        assert client is not None
        await register_client(conn, RegisteredClient(**{**client.__dict__, "active": False}))
    oauth_error(await env.client_credentials(env.assertion()), 401, "invalid_client", "inactive")


# --- authorization_code + PKCE through the development login ---------------------------------------------


async def test_pgo_flow_for_myself(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    params = env.authorize_params(verifier)
    page = await env.http.get("/auth/authorize", params=params)
    assert page.status_code == 200
    assert "Anna de Vries" in page.text and "Mijn Zorgnet" in page.text and "DigiD" in page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    step1 = await env.http.post("/auth/authorize", data={**params, "step": "login", "person_id": "p-anna"})
    assert "Myself" in step1.text
    # only patient/ scopes the app may have are offered; openid and patient/Observation.c are not
    offered = set(re.findall(r"name='scope_ok' value='([^']+)'", step1.text))
    assert offered == {"launch/patient", "patient/*.rs", "patient/Goal.cruds"}

    redirect = await env.login_and_approve(verifier, "p-anna", "self")
    q = code_from(redirect)
    assert q["state"] == ["st-123"] and q["iss"] == [BASE]
    r = await env.redeem(q["code"][0], verifier)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["expires_in"] == 3600 and body["patient_bsn"] == CLIENT_BSN and body["patient"] == f"pat-{CLIENT_BSN}"
    me = await env.whoami(body["access_token"])
    assert me["kind"] == "client" and me["patient_bsn"] == CLIENT_BSN and me["person"] == "p-anna"
    assert me["acting_for"] is None and me["client_id"] == "mijn-app"
    assert me["scopes"] == ["launch/patient", "patient/*.rs", "patient/Goal.cruds"]


async def test_pgo_flow_acting_for_a_client(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    params = env.authorize_params(verifier)
    step1 = await env.http.post("/auth/authorize", data={**params, "step": "login", "person_id": "p-bert"})
    assert CLIENT_BSN in step1.text and "Myself" not in step1.text  # Bert has no own BSN here
    assert OTHER_BSN not in step1.text  # the delegation that ended is not offered
    redirect = await env.login_and_approve(verifier, "p-bert", CLIENT_BSN, scopes=["patient/*.rs"])
    r = await env.redeem(code_from(redirect)["code"][0], verifier)
    assert r.status_code == 200, r.text
    me = await env.whoami(r.json()["access_token"])
    assert me["kind"] == "related" and me["person"] == "p-bert" and me["subject"] == "p-bert"
    assert me["patient_bsn"] == CLIENT_BSN and me["acting_for"] == CLIENT_BSN and me["relation"] == "100001"
    assert me["scopes"] == ["patient/*.rs"]


async def test_login_with_a_bsn_only(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    params = env.authorize_params(verifier)
    r = await env.http.post("/auth/authorize", data={**params, "step": "login", "login_bsn": OTHER_BSN})
    assert "Myself" in r.text and OTHER_BSN in r.text
    redirect = await env.login_and_approve(verifier, f"bsn:{OTHER_BSN}", "self")
    me = await env.whoami((await env.redeem(code_from(redirect)["code"][0], verifier)).json()["access_token"])
    assert me["kind"] == "client" and me["patient_bsn"] == OTHER_BSN


async def test_acting_for_someone_not_delegated_is_refused(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    for person, act_for in (("p-bert", OTHER_BSN), ("p-bert", "self"), ("p-anna", OTHER_BSN)):
        r = await env.login_and_approve(verifier, person, act_for)
        assert r.status_code == 400 and "Choose for whom you act" in r.text
    assert "location" not in r.headers


async def test_deny_and_unknown_person(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    params = env.authorize_params(verifier)
    r = await env.http.post(
        "/auth/authorize",
        data={**params, "step": "approve", "person_id": "p-anna", "act_for": "self", "decision": "deny"},
    )
    q = code_from(r)
    assert q["error"] == ["access_denied"] and "code" not in q
    r = await env.http.post("/auth/authorize", data={**params, "step": "login", "person_id": "p-nobody"})
    assert r.status_code == 200 and "Choose a person" in r.text


async def test_authorize_request_errors(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    # never redirect to an unregistered URI or for an unknown client
    for over in (
        {"redirect_uri": "https://evil.example.org/cb"},
        {"client_id": "nope"},
        {"client_id": "ecd"},
    ):
        r = await env.http.get("/auth/authorize", params=env.authorize_params(verifier, **over))
        assert r.status_code == 400 and "location" not in r.headers
    cases = [
        ({"code_challenge_method": "plain", "code_challenge": verifier[:43]}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"aud": "https://other.example.org/fhir"}, "invalid_request"),
        ({"scope": "openid system/*.cruds"}, "invalid_scope"),
    ]
    for over, error in cases:
        q = code_from(await env.http.get("/auth/authorize", params=env.authorize_params(verifier, **over)))
        assert q["error"] == [error], over
        assert q["state"] == ["st-123"]


async def test_pkce_verifier_mismatch_is_rejected_and_burns_the_code(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    code = code_from(await env.login_and_approve(verifier, "p-anna", "self"))["code"][0]
    oauth_error(await env.redeem(code, secrets.token_urlsafe(48)), 400, "invalid_grant", "PKCE")
    oauth_error(await env.redeem(code, verifier), 400, "invalid_grant", "already used")


async def test_code_reuse_is_rejected(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    code = code_from(await env.login_and_approve(verifier, "p-anna", "self"))["code"][0]
    assert (await env.redeem(code, verifier)).status_code == 200
    oauth_error(await env.redeem(code, verifier), 400, "invalid_grant", "already used")


async def test_code_exchange_errors(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)

    async def fresh_code() -> str:
        return code_from(await env.login_and_approve(verifier, "p-anna", "self"))["code"][0]

    oauth_error(await env.redeem("made-up-code", verifier), 400, "invalid_grant", "unknown")
    oauth_error(
        await env.redeem(await fresh_code(), verifier, redirect_uri=REDIRECT + "x"),
        400,
        "invalid_grant",
        "redirect_uri",
    )
    oauth_error(
        await env.redeem(await fresh_code(), verifier, client_id="conf-app"),
        401,
        "invalid_client",
        "private_key_jwt",
    )
    oauth_error(await env.redeem(await fresh_code(), "short"), 400, "invalid_grant", "PKCE")
    code = await fresh_code()
    env.clock.now += 61
    oauth_error(await env.redeem(code, verifier), 400, "invalid_grant", "expired")
    r = await env.http.post("/auth/token", data={"grant_type": "authorization_code", "code": "x"})
    oauth_error(r, 400, "invalid_request")


async def test_confidential_pgo_client_authenticates_with_an_assertion(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    redirect = await env.login_and_approve(verifier, "p-anna", "self", client_id="conf-app", scope="patient/*.rs")
    code = code_from(redirect)["code"][0]
    assertion = env.assertion("conf-app", env.pgo_key)
    r = await env.redeem(
        code, verifier, client_id="conf-app", client_assertion_type=JWT_BEARER, client_assertion=assertion
    )
    assert r.status_code == 200, r.text
    assert (await env.whoami(r.json()["access_token"]))["client_id"] == "conf-app"


async def test_code_of_one_app_cannot_be_redeemed_by_another(env: Env) -> None:
    verifier = secrets.token_urlsafe(48)
    async with env.engine.begin() as conn:
        await register_client(
            conn,
            RegisteredClient("other-app", "pgo", redirect_uris=(REDIRECT,), allowed_scopes=frozenset({"patient/*.rs"})),
        )
    code = code_from(await env.login_and_approve(verifier, "p-anna", "self"))["code"][0]
    oauth_error(await env.redeem(code, verifier, client_id="other-app"), 400, "invalid_grant", "another client")


async def test_bearer_errors_reach_the_client_as_401(env: Env) -> None:
    r = await env.http.get("/fhir/whoami")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="zorgnet-hub"'
    r = await env.http.get("/fhir/whoami", headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    assert r.json()["resourceType"] == "OperationOutcome"
