"""Bearer token verification: every attack fails closed with 401; valid tokens map to principals.

Also the SMART scope rules of :class:`Principal`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from hub.access.authserver import issue_token, token_for
from hub.access.keys import HubKeys, jws_registry
from hub.access.principal import ADMIN_SCOPE, UZI_SYSTEM, Principal, narrow_scopes, parse_scope
from hub.access.tokens import AuthConfig, ExternalIssuer, TokenVerifier, principal_dependency
from hub.fhir.errors import Unauthorized

BSN = "999911120"
URA = "12345678"
IDP = "https://idp.example.org"
IDP_JWKS = "https://idp.example.org/jwks"


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def keys() -> HubKeys:
    return HubKeys.in_memory()


@pytest.fixture
def config() -> AuthConfig:
    return AuthConfig(base_url="http://hub.test")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(config: AuthConfig, keys: HubKeys, clock: Clock) -> TokenVerifier:
    return TokenVerifier(config, keys, clock=clock)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes] | None = None) -> str:
    """A compact JWS assembled by hand, so that no library stops us from building an attack."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


def good_claims(config: AuthConfig, clock: Clock, **over: Any) -> dict[str, Any]:
    now = int(clock.now)
    claims = {
        "iss": config.issuer,
        "aud": config.audience,
        "sub": "sys-1",
        "iat": now,
        "exp": now + 300,
        "jti": "t-1",
        "kind": "professional",
        "ura": URA,
        "scope": "system/*.rs",
        "client_id": "sys-1",
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def sign_hub(keys: HubKeys, claims: dict[str, Any], **header: Any) -> str:
    key = keys._active  # the private key: the legitimate signer
    hdr = {"alg": keys.alg, "kid": keys.active_kid, "typ": "at+jwt", **header}
    return jwt.encode(hdr, claims, key, algorithms=[hdr["alg"]], registry=jws_registry())


async def assert_401(verifier: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(Unauthorized) as info:
        await verifier.verify(token)
    exc = info.value
    assert exc.status == 401
    assert reason in exc.diagnostics
    assert exc.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


# --- positive -------------------------------------------------------------------------------------


async def test_valid_professional_token(config: AuthConfig, keys: HubKeys, verifier: TokenVerifier) -> None:
    token = issue_token(
        keys,
        config,
        kind="professional",
        subject="ecd-1",
        scopes={"system/*.cruds"},
        client_id="ecd-1",
        organisation_ura=URA,
        practitioner=(UZI_SYSTEM, "123456789"),
    )
    p = await verifier.verify(token)
    assert p.kind == "professional" and p.subject == "ecd-1" and p.client_id == "ecd-1"
    assert p.organisation_ura == URA and p.practitioner == (UZI_SYSTEM, "123456789")
    assert p.scopes == frozenset({"system/*.cruds"}) and p.patient_bsn is None
    assert p.issuer == config.issuer and p.token_id and p.expires_at


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("admin", {"kind": "admin", "scopes": frozenset({ADMIN_SCOPE})}),
        (f"client:{BSN}", {"kind": "client", "patient_bsn": BSN, "acting_for": None}),
        (f"org:{URA}", {"kind": "professional", "organisation_ura": URA, "practitioner": None}),
        (f"org:{URA}:practitioner:123456789", {"practitioner": (UZI_SYSTEM, "123456789")}),
        (
            f"org:{URA}:practitioner:agb:01234567",
            {"practitioner": ("http://fhir.nl/fhir/NamingSystem/agb-z", "01234567")},
        ),
        (
            f"person:p-7:for:{BSN}",
            {"kind": "related", "person_id": "p-7", "patient_bsn": BSN, "acting_for": BSN},
        ),
        (f"person:p-7:for:{BSN}:as:24", {"relation": "24"}),
        ("system:outbox", {"kind": "system", "subject": "outbox", "organisation_ura": None}),
    ],
)
async def test_token_for_every_identity(
    spec: str, expected: dict[str, Any], config: AuthConfig, keys: HubKeys, verifier: TokenVerifier
) -> None:
    p = await verifier.verify(token_for(spec, config, keys))
    for name, value in expected.items():
        assert getattr(p, name) == value, name
    assert p.client_id == "hub-cli"


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "root",
        "client:123",
        "org:1234",
        f"org:{URA}:practitioner:",
        f"org:{URA}:doctor:1",
        f"person:p:for:{BSN}:as:",
        "person:p",
        f"person::for:{BSN}",
        "admin:x",
        "client:99991112a",
    ],
)
def test_token_for_refuses_bad_specs(spec: str, config: AuthConfig, keys: HubKeys) -> None:
    with pytest.raises(ValueError, match="bad --as"):
        token_for(spec, config, keys)


def test_token_for_creates_keys_in_key_dir(tmp_path: Any) -> None:
    config = AuthConfig(base_url="http://hub.test", key_dir=tmp_path)
    token = token_for("admin", config)
    assert (tmp_path / "jwks.json").exists()
    assert (
        HubKeys.load_or_create(tmp_path).active_kid
        in json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "==")).values()
    )


def test_issue_token_refuses_inconsistent_claims(config: AuthConfig, keys: HubKeys) -> None:
    with pytest.raises(ValueError, match="patient_bsn"):
        issue_token(keys, config, kind="client", subject="x", scopes={"patient/*.rs"})
    with pytest.raises(ValueError, match="ura"):
        issue_token(keys, config, kind="professional", subject="x", scopes={"system/*.rs"})
    with pytest.raises(ValueError, match="acting_for"):
        issue_token(keys, config, kind="related", subject="x", person_id="x", patient_bsn=BSN, scopes={"patient/*.rs"})


async def test_clock_skew_is_tolerated_up_to_60s(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    now = int(clock.now)
    late = sign_hub(keys, good_claims(config, clock, iat=now - 400, exp=now - 30, jti="late"))
    assert (await verifier.verify(late)).kind == "professional"
    early = sign_hub(keys, good_claims(config, clock, iat=now + 30, nbf=now + 30, jti="early"))
    assert (await verifier.verify(early)).kind == "professional"


def test_skew_cannot_be_configured_above_60s() -> None:
    with pytest.raises(ValueError, match="max_skew"):
        AuthConfig(max_skew=300)


async def test_results_are_cached_until_expiry(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    token = sign_hub(keys, good_claims(config, clock, exp=int(clock.now) + 100))
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first  # served from the cache
    clock.now += 100 + 61
    await assert_401(verifier, token, "expired")
    await assert_401(verifier, token, "expired")  # and again, now uncached


async def test_authorization_header_parsing(config: AuthConfig, keys: HubKeys, verifier: TokenVerifier) -> None:
    token = token_for("admin", config, keys)
    assert (await verifier.verify_authorization(f"Bearer {token}")).kind == "admin"
    assert (await verifier.verify_authorization(f"bearer  {token} ")).kind == "admin"
    with pytest.raises(Unauthorized) as info:
        await verifier.verify_authorization(None)
    assert info.value.headers["WWW-Authenticate"] == 'Bearer realm="zorgnet-hub"'
    for bad in (f"Basic {token}", "Bearer", "Bearer   ", token):
        with pytest.raises(Unauthorized):
            await verifier.verify_authorization(bad)


async def test_principal_dependency_reads_the_header(
    config: AuthConfig, keys: HubKeys, verifier: TokenVerifier
) -> None:
    from starlette.requests import Request

    dep = principal_dependency(verifier)
    token = token_for(f"client:{BSN}", config, keys)
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]}
    assert (await dep(Request(scope))).patient_bsn == BSN
    with pytest.raises(Unauthorized):
        await dep(Request({"type": "http", "headers": []}))


# --- attacks: each one a 401 ------------------------------------------------------------------------


async def test_alg_none_is_rejected(config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier) -> None:
    for alg in ("none", "None", "NONE"):
        token = craft({"alg": alg, "kid": keys.active_kid, "typ": "at+jwt"}, good_claims(config, clock))
        await assert_401(verifier, token, "is not accepted")


async def test_hmac_signed_with_the_public_key_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    public = keys.verification_key(keys.active_kid)
    assert isinstance(public, ECKey)
    pem = public.as_pem(private=False)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    jwk = public.as_dict()
    secrets = [pem, json.dumps(jwk).encode(), str(jwk["x"]).encode()]
    for alg, digest in (("HS256", "sha256"), ("HS384", "sha384"), ("HS512", "sha512")):
        for secret in secrets:

            def sign(msg: bytes, key: bytes = secret, d: str = digest) -> bytes:
                return hmac.new(key, msg, d).digest()

            token = craft({"alg": alg, "kid": keys.active_kid, "typ": "at+jwt"}, good_claims(config, clock), sign)
            await assert_401(verifier, token, "is not accepted")


async def test_unknown_kid_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    attacker = ECKey.generate_key("P-256")
    token = jwt.encode(
        {"alg": "ES256", "kid": "attacker-key", "typ": "at+jwt"},
        good_claims(config, clock),
        attacker,
        algorithms=["ES256"],
    )
    await assert_401(verifier, token, "unknown key id")


async def test_missing_kid_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    token = jwt.encode(
        {"alg": keys.alg, "typ": "at+jwt"}, good_claims(config, clock), keys._active, algorithms=[keys.alg]
    )
    await assert_401(verifier, token, "no kid")


async def test_own_kid_with_attacker_key_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    attacker = ECKey.generate_key("P-256")
    token = jwt.encode(
        {"alg": "ES256", "kid": keys.active_kid, "typ": "at+jwt"},
        good_claims(config, clock),
        attacker,
        algorithms=["ES256"],
    )
    await assert_401(verifier, token, "signature does not verify")


async def test_algorithm_not_matching_the_key_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    rsa = RSAKey.generate_key(2048)
    token = jwt.encode(
        {"alg": "RS256", "kid": keys.active_kid, "typ": "at+jwt"},
        good_claims(config, clock),
        rsa,
        algorithms=["RS256"],
    )
    await assert_401(verifier, token, "ES256, not RS256")


async def test_tampered_payload_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    token = sign_hub(keys, good_claims(config, clock, scope="system/Patient.r"))
    header, _, signature = token.split(".")
    forged = b64(json.dumps(good_claims(config, clock, scope="system/*.cruds")).encode())
    await assert_401(verifier, f"{header}.{forged}.{signature}", "signature does not verify")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    await assert_401(verifier, f"{token.rsplit('.', 1)[0]}.{flipped}", "signature does not verify")


async def test_expired_token_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    now = int(clock.now)
    token = sign_hub(keys, good_claims(config, clock, iat=now - 600, exp=now - 61))
    await assert_401(verifier, token, "expired")


async def test_not_yet_valid_token_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    now = int(clock.now)
    await assert_401(verifier, sign_hub(keys, good_claims(config, clock, nbf=now + 61)), "not valid yet")
    await assert_401(
        verifier,
        sign_hub(keys, good_claims(config, clock, iat=now + 61, exp=now + 400)),
        "issued in the future",
    )


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"iss": "https://evil.example.org"}, "is not trusted"),
        ({"iss": None}, "'iss' is missing"),
        ({"aud": "https://other-server.example.org/fhir"}, "audience"),
        ({"aud": ["https://other.example.org"]}, "audience"),
        ({"aud": None}, "'aud' is missing"),
        ({"exp": None}, "'exp' is missing"),
        ({"exp": True}, "NumericDate"),
        ({"exp": "9999999999"}, "NumericDate"),
        ({"iat": None}, "'iat' is missing"),
        ({"sub": None}, "'sub' is missing"),
        ({"kind": None}, "'kind'"),
        ({"kind": "superuser"}, "'kind'"),
        ({"ura": None}, "organisation"),
        ({"ura": "12"}, "8 digits"),
        ({"patient_bsn": BSN}, "patient context"),
        ({"kind": "client", "ura": None, "patient_bsn": None}, "patient_bsn"),
        (
            {"kind": "related", "ura": None, "patient_bsn": BSN, "person": "p", "acting_for": "999911132"},
            "acting_for",
        ),
        ({"kind": "admin", "ura": URA}, "cannot carry ura"),
        ({"practitioner": {"system": "urn:evil", "value": "1"}}, "practitioner"),
        ({"scope": {"a": 1}}, "scope"),
    ],
)
async def test_bad_claims_are_rejected(
    override: dict[str, Any],
    reason: str,
    config: AuthConfig,
    keys: HubKeys,
    clock: Clock,
    verifier: TokenVerifier,
) -> None:
    claims = good_claims(config, clock)
    for k, v in override.items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    await assert_401(verifier, sign_hub(keys, claims), reason)


async def test_too_long_lifetime_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    now = int(clock.now)
    token = sign_hub(keys, good_claims(config, clock, exp=now + 10 * 86400))
    await assert_401(verifier, token, "lifetime")


async def test_other_jwt_types_are_not_access_tokens(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    await assert_401(verifier, sign_hub(keys, good_claims(config, clock), typ="JWT"), "typ must be at+jwt")


async def test_crit_header_is_rejected(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    token = craft(
        {"alg": "ES256", "kid": keys.active_kid, "typ": "at+jwt", "crit": ["exp"]},
        good_claims(config, clock),
        lambda m: b"x" * 64,
    )
    await assert_401(verifier, token, "")


ES256_HEADER = b64(b'{"alg":"ES256","kid":"k"}')


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d.e",
        "é.é.é",
        "x" * 9000,
        f"{b64(b'[]')}.{b64(b'{}')}.",
        f"{ES256_HEADER}.{b64(b'[1]')}.AA",
        f"{ES256_HEADER}.{b64(b'not json')}.AA",
    ],
)
async def test_malformed_tokens_are_rejected(token: str, verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized):
        await verifier.verify(token)


# --- external issuers ---------------------------------------------------------------------------------


class FakeIdp:
    """An identity provider serving its JWKS through httpx.MockTransport."""

    def __init__(self) -> None:
        self.keys: list[Key] = [self._new("k1")]
        self.requests = 0
        self.down = False

    @staticmethod
    def _new(kid: str, kind: str = "RSA") -> Key:
        if kind == "RSA":
            return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})
        return OKPKey.generate_key("Ed25519", parameters={"kid": kid})

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        assert str(request.url) == IDP_JWKS
        if self.down:
            return httpx.Response(503)
        jwks = {"keys": [k.as_dict(private=False) for k in self.keys] + [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}
        return httpx.Response(200, json=jwks)

    def token(self, config: AuthConfig, clock: Clock, key: Key | None = None, alg: str = "RS256", **over: Any) -> str:
        key = key or self.keys[0]
        base: dict[str, Any] = {
            "iss": IDP,
            "kind": "client",
            "ura": None,
            "patient_bsn": BSN,
            "scope": "patient/*.rs",
        }
        claims = good_claims(config, clock, **(base | over))
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg], registry=jws_registry())


@pytest.fixture
def idp() -> FakeIdp:
    return FakeIdp()


@pytest.fixture
def ext_verifier(idp: FakeIdp, keys: HubKeys, clock: Clock) -> TokenVerifier:
    config = AuthConfig(base_url="http://hub.test", external_issuers=(ExternalIssuer(IDP, IDP_JWKS),))
    http = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    return TokenVerifier(config, keys, http, clock=clock)


async def test_external_issuer_token_is_accepted(
    idp: FakeIdp, config: AuthConfig, clock: Clock, ext_verifier: TokenVerifier
) -> None:
    p = await ext_verifier.verify(idp.token(config, clock))
    assert p.kind == "client" and p.patient_bsn == BSN and p.issuer == IDP
    await ext_verifier.verify(idp.token(config, clock, jti="second"))
    assert idp.requests == 1  # the JWKS is cached


async def test_external_eddsa_tokens_are_accepted(
    idp: FakeIdp, config: AuthConfig, clock: Clock, ext_verifier: TokenVerifier
) -> None:
    ed = FakeIdp._new("ed", "OKP")
    idp.keys.append(ed)
    for alg in ("EdDSA", "Ed25519"):
        assert (await ext_verifier.verify(idp.token(config, clock, key=ed, alg=alg, jti=alg))).kind == "client"


async def test_external_unknown_kid_refetches_at_most_once_a_minute(
    idp: FakeIdp, config: AuthConfig, clock: Clock, ext_verifier: TokenVerifier
) -> None:
    await ext_verifier.verify(idp.token(config, clock))
    stranger = FakeIdp._new("k-unknown")
    for i in range(5):
        await assert_401(ext_verifier, idp.token(config, clock, key=stranger, jti=f"u{i}"), "unknown key id")
    assert idp.requests == 2  # the first fetch plus one refetch for the unknown kid
    # the IdP rotates: after the interval the new kid is fetched
    idp.keys.append(stranger)
    await assert_401(ext_verifier, idp.token(config, clock, key=stranger, jti="u5"), "unknown key id")
    clock.now += 61
    assert (await ext_verifier.verify(idp.token(config, clock, key=stranger, jti="u6"))).kind == "client"
    assert idp.requests == 3


async def test_external_jwks_outage_keeps_known_keys(
    idp: FakeIdp, config: AuthConfig, clock: Clock, ext_verifier: TokenVerifier
) -> None:
    await ext_verifier.verify(idp.token(config, clock))
    idp.down = True
    clock.now += 7200  # past the cache TTL: the refetch fails, the known key stays usable
    assert (await ext_verifier.verify(idp.token(config, clock, jti="later"))).kind == "client"


async def test_external_issuer_symmetric_key_and_hmac_are_refused(
    idp: FakeIdp, config: AuthConfig, clock: Clock, ext_verifier: TokenVerifier
) -> None:
    claims = good_claims(config, clock, iss=IDP, kind="client", ura=None, patient_bsn=BSN)
    token = craft({"alg": "HS256", "kid": "s"}, claims, lambda m: hmac.new(b"secret", m, hashlib.sha256).digest())
    await assert_401(ext_verifier, token, "is not accepted")


async def test_external_issuer_cannot_mint_admins_or_wrong_audience(
    idp: FakeIdp, config: AuthConfig, clock: Clock, ext_verifier: TokenVerifier
) -> None:
    await assert_401(ext_verifier, idp.token(config, clock, kind="admin", patient_bsn=None), "may not issue admin")
    await assert_401(ext_verifier, idp.token(config, clock, aud="https://elsewhere"), "audience")


async def test_external_issuer_cannot_mint_internal_system_tokens(
    idp: FakeIdp, config: AuthConfig, clock: Clock, ext_verifier: TokenVerifier
) -> None:
    token = idp.token(config, clock, kind="system", patient_bsn=None)
    await assert_401(ext_verifier, token, "may not issue system")


async def test_challenge_header_stays_printable_ascii(
    config: AuthConfig, keys: HubKeys, clock: Clock, verifier: TokenVerifier
) -> None:
    token = sign_hub(keys, good_claims(config, clock, iss='https://\u00e9vil"\r\nX-Injected: 1\u2603'))
    with pytest.raises(Unauthorized) as info:
        await verifier.verify(token)
    header = info.value.headers["WWW-Authenticate"]
    header.encode("ascii")
    assert "\r" not in header and "\n" not in header and header.count('"') == 4


async def test_token_of_one_issuer_signed_by_another_is_rejected(
    idp: FakeIdp, config: AuthConfig, keys: HubKeys, clock: Clock, ext_verifier: TokenVerifier
) -> None:
    # signed by the IdP's key, but claims to be from the hub: the hub has no such kid
    claims = good_claims(config, clock)
    key = idp.keys[0]
    token = jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}, claims, key, algorithms=["RS256"])
    await assert_401(ext_verifier, token, "unknown key id")


def test_external_issuer_may_not_reuse_the_hub_issuer() -> None:
    with pytest.raises(ValueError, match="own issuer"):
        AuthConfig(base_url="http://hub.test", external_issuers=(ExternalIssuer("http://hub.test", IDP_JWKS),))


# --- scopes -------------------------------------------------------------------------------------------


def test_parse_scope_v2_and_v1() -> None:
    s = parse_scope("patient/Observation.rs")
    assert s is not None and s.permissions == frozenset("rs") and s.resource_type == "Observation"
    assert parse_scope("system/*.read") == parse_scope("system/*.rs")
    assert parse_scope("user/Patient.write") == parse_scope("user/Patient.cud")
    assert parse_scope("user/Patient.*") == parse_scope("user/Patient.cruds")
    q = parse_scope("patient/Observation.rs?category=vital-signs")
    assert q is not None and q.query == "category=vital-signs"
    for bad in (
        "patient/Observation.sr",
        "patient/Observation.rr",
        "patient/observation.r",
        "openid",
        "launch/patient",
        "patient/*.x",
        "admin/*.r",
        "patient/Observation.",
    ):
        assert parse_scope(bad) is None, bad


def test_allows_scope() -> None:
    p = Principal(
        kind="professional",
        subject="s",
        organisation_ura=URA,
        scopes=frozenset(
            {
                "system/Observation.rs",
                "system/Patient.r",
                "system/CarePlan.cu",
                "system/Condition.rs?category=problem-list-item",
                "openid",
            }
        ),
    )
    assert p.allows_scope("Observation", "r") and p.allows_scope("Observation", "s")
    assert not p.allows_scope("Observation", "c")
    assert p.allows_scope("Patient", "r") and not p.allows_scope("Patient", "s")
    assert p.allows_scope("CarePlan", "u") and not p.allows_scope("CarePlan", "d")
    assert not p.allows_scope("Condition", "r")  # conditional: only part of the type
    assert p.scope_filters("Condition", "r") == ("category=problem-list-item",)
    assert not p.allows_scope("Observation", "r", context="patient")
    wild = Principal(kind="client", subject="c", patient_bsn=BSN, scopes=frozenset({"patient/*.read"}))
    assert wild.allows_scope("AuditEvent", "s") and not wild.allows_scope("Consent", "c")
    assert not Principal(kind="admin", subject="a").is_admin
    assert Principal(kind="admin", subject="a", scopes=frozenset({ADMIN_SCOPE})).is_admin


def test_narrow_scopes_keeps_the_upper_bound() -> None:
    allowed = {"system/*.rs", "system/CarePlan.cruds", "hub/admin"}
    assert narrow_scopes(["system/*.cruds"], allowed) == {"system/*.rs", "system/CarePlan.cruds"}
    assert narrow_scopes(["system/Observation.read"], allowed) == {"system/Observation.rs"}
    assert narrow_scopes(["system/Observation.c", "patient/*.rs", "openid"], allowed) == frozenset()
    assert narrow_scopes(["hub/admin"], allowed) == {"hub/admin"}
    assert narrow_scopes(["system/Observation.rs?code=x"], allowed) == {"system/Observation.rs?code=x"}
    assert narrow_scopes(["system/Patient.r"], {"system/Patient.rs?x=1"}) == frozenset()
    both = {"patient/*.rs", "patient/Goal.cruds"}
    assert narrow_scopes(["patient/Goal.cruds", "patient/Goal.r", "patient/*.rs"], both) == both
