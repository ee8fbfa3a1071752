"""Forged and broken bearer tokens against the FHIR endpoint: each one is a 401 with an
OperationOutcome and a ``WWW-Authenticate`` challenge, and reveals no data.

Tokens are assembled by hand (``craft``) or signed with joserfc, starting from the claims of a real
token the hub issued, so that each attack changes exactly one thing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from hub.access.wiring import auth_config, hub_keys
from tests.conftest import clean, token_for_app

SPEC = "org:00012345:practitioner:900001111"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def craft(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes] | None = None) -> str:
    """A compact JWS put together by hand, so no library refuses to build the attack."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()) if sign else b'')}"


@pytest_asyncio.fixture(loop_scope="session")
async def hub(hub_app: Any) -> AsyncIterator[dict[str, Any]]:
    """A valid token of the hub, its header and claims, the hub's keys, and an unauthenticated client."""
    await clean(hub_app)
    keys = hub_keys(auth_config(hub_app.state.settings))
    token = token_for_app(hub_app, SPEC)
    header = json.loads(unb64(token.split(".")[0]))
    claims = json.loads(unb64(token.split(".")[1]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub_app), base_url="http://hub.test") as c:
        yield {"keys": keys, "token": token, "header": header, "claims": claims, "http": c}


def resign(hub: dict[str, Any], **changes: Any) -> str:
    """The hub's own token with some claims changed, properly signed with the hub's own key."""
    claims = {**hub["claims"], **changes}
    return str(hub["keys"].sign({k: v for k, v in claims.items() if v is not None}))


async def assert_refused(hub: dict[str, Any], authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for url in ("/fhir/Patient", "/fhir/Organization/org-0", "/fhir/Patient/$everything"):
        resp = await hub["http"].get(url, headers=headers)
        assert resp.status_code == 401, (authorization, url, resp.text)
        body = resp.json()
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["severity"] in ("error", "fatal")
        challenge = resp.headers.get("WWW-Authenticate", "")
        assert challenge.startswith("Bearer"), challenge
    resp = await hub["http"].post("/fhir", headers=headers, json={"resourceType": "Bundle", "type": "batch"})
    assert resp.status_code == 401


async def test_the_genuine_token_works(hub: dict[str, Any]) -> None:
    resp = await hub["http"].get("/fhir/Patient", headers={"Authorization": f"Bearer {hub['token']}"})
    assert resp.status_code == 200
    resp = await hub["http"].get("/fhir/Patient", headers={"Authorization": f"Bearer {resign(hub)}"})
    assert resp.status_code == 200


async def test_no_token(hub: dict[str, Any]) -> None:
    await assert_refused(hub, None)
    resp = await hub["http"].get("/fhir/Patient")
    assert "error=" not in resp.headers["WWW-Authenticate"]  # RFC 6750 §3.1: no error code without credentials
    assert (await hub["http"].get("/fhir/metadata")).status_code == 200  # the one public resource


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "bearer",
        "Token abc.def.ghi",
        "Bearer not-a-jwt",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer ....",
        "Bearer eyJhbGciOiJFUzI1NiJ9.e30",
        "Bearer " + "A" * 9000,
    ],
)
async def test_malformed_authorization_header(hub: dict[str, Any], authorization: str) -> None:
    await assert_refused(hub, authorization)


async def test_alg_none(hub: dict[str, Any]) -> None:
    for alg in ("none", "None", "NONE", "nOnE"):
        await assert_refused(hub, f"Bearer {craft({**hub['header'], 'alg': alg}, hub['claims'])}")
    # Also with the genuine signature left on.
    genuine = hub["token"].split(".")[2]
    head = b64(json.dumps({**hub["header"], "alg": "none"}).encode())
    await assert_refused(hub, f"Bearer {head}.{hub['token'].split('.')[1]}.{genuine}")


async def test_hmac_signed_with_the_public_key(hub: dict[str, Any]) -> None:
    public = hub["keys"].verification_key(hub["header"]["kid"])
    secrets = [public.as_pem(private=False), json.dumps(public.as_dict()).encode(), str(public.as_dict()["x"]).encode()]
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
        for secret in secrets:

            def sign(msg: bytes, key: bytes = secret, d: Any = digest) -> bytes:
                return hmac.new(key, msg, d).digest()

            await assert_refused(hub, f"Bearer {craft({**hub['header'], 'alg': alg}, hub['claims'], sign)}")


async def test_unknown_kid(hub: dict[str, Any]) -> None:
    attacker = ECKey.generate_key("P-256")
    for kid in ("attacker-key", "", "../../etc/passwd", hub["header"]["kid"] + "x"):
        header = {**hub["header"], "kid": kid}
        await assert_refused(hub, f"Bearer {jwt.encode(header, hub['claims'], attacker, algorithms=['ES256'])}")
    no_kid = {k: v for k, v in hub["header"].items() if k != "kid"}
    await assert_refused(hub, f"Bearer {jwt.encode(no_kid, hub['claims'], attacker, algorithms=['ES256'])}")


async def test_token_signed_by_another_key(hub: dict[str, Any]) -> None:
    """The hub's kid, the hub's claims, someone else's key (EC of the same curve, and RSA)."""
    ec = ECKey.generate_key("P-256")
    await assert_refused(hub, f"Bearer {jwt.encode(hub['header'], hub['claims'], ec, algorithms=['ES256'])}")
    rsa = RSAKey.generate_key(2048)
    header = {**hub["header"], "alg": "RS256"}
    await assert_refused(hub, f"Bearer {jwt.encode(header, hub['claims'], rsa, algorithms=['RS256'])}")


async def test_expired(hub: dict[str, Any]) -> None:
    now = int(time.time())
    await assert_refused(hub, f"Bearer {resign(hub, iat=now - 3600, exp=now - 120)}")
    await assert_refused(hub, f"Bearer {resign(hub, exp=None)}")  # no expiry at all


async def test_not_yet_valid(hub: dict[str, Any]) -> None:
    now = int(time.time())
    await assert_refused(hub, f"Bearer {resign(hub, nbf=now + 600)}")
    await assert_refused(hub, f"Bearer {resign(hub, iat=now + 600, exp=now + 900)}")


async def test_wrong_issuer(hub: dict[str, Any]) -> None:
    for iss in ("https://evil.example.org", hub["claims"]["iss"] + "/", None):
        await assert_refused(hub, f"Bearer {resign(hub, iss=iss)}")


async def test_wrong_audience(hub: dict[str, Any]) -> None:
    for aud in ("https://other-hub.example.org/fhir", [], ["https://other.example.org"], None):
        await assert_refused(hub, f"Bearer {resign(hub, aud=aud)}")


async def test_tampered_payload(hub: dict[str, Any]) -> None:
    header, _, signature = hub["token"].split(".")
    for change in (
        {"ura": "00099999"},
        {"kind": "admin", "scope": "hub/admin"},
        {"scope": "system/*.cruds hub/admin"},
        {"exp": hub["claims"]["exp"] + 3600},
    ):
        forged = b64(json.dumps({**hub["claims"], **change}).encode())
        await assert_refused(hub, f"Bearer {header}.{forged}.{signature}")
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    await assert_refused(hub, f"Bearer {header}.{hub['token'].split('.')[1]}.{flipped}")
    await assert_refused(hub, f"Bearer {header}.{hub['token'].split('.')[1]}.")  # signature stripped
    # The genuine token still works afterwards: a refusal is not cached against it, nor vice versa.
    resp = await hub["http"].get("/fhir/Patient", headers={"Authorization": f"Bearer {hub['token']}"})
    assert resp.status_code == 200


async def test_not_an_access_token(hub: dict[str, Any]) -> None:
    """A JWT the hub signed for another purpose (an id token, typ JWT) is not a bearer token."""
    claims = {k: v for k, v in hub["claims"].items()}
    await assert_refused(hub, f"Bearer {hub['keys'].sign(claims, typ='JWT')}")
