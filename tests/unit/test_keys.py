"""The hub's signing key set: creation on disk, file mode, thumbprint kids, rotation, retirement."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import import_key

from hub.access.keys import KEYS_FILE, HubKeys, jws_registry, retire_key, rotate_keys
from hub.access.tokens import AuthConfig, TokenVerifier
from hub.fhir.errors import Unauthorized


def _config(key_dir: Path) -> AuthConfig:
    return AuthConfig(base_url="http://hub.test", key_dir=key_dir)


def _claims(config: AuthConfig) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": config.issuer,
        "aud": config.audience,
        "sub": "admin",
        "kind": "admin",
        "scope": "hub/admin",
        "iat": now,
        "exp": now + 60,
        "jti": "j1",
    }


def test_created_on_first_use_with_private_mode(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    keys = HubKeys.load_or_create(key_dir)
    path = key_dir / KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    data = orjson.loads(path.read_bytes())
    assert data["active"] == keys.active_kid
    assert data["keys"][0]["d"]  # the private key is kept
    assert keys.alg == "ES256"
    # kid is the RFC 7638 thumbprint
    assert import_key(data["keys"][0]).thumbprint() == keys.active_kid
    again = HubKeys.load_or_create(key_dir)
    assert again.active_kid == keys.active_kid


def test_public_jwks_has_no_private_parts(tmp_path: Path) -> None:
    keys = HubKeys.load_or_create(tmp_path)
    jwks = keys.public_jwks()
    assert [k["kid"] for k in jwks["keys"]] == [keys.active_kid]
    assert all("d" not in k for k in jwks["keys"])
    assert jwks["keys"][0]["use"] == "sig" and jwks["keys"][0]["alg"] == "ES256"


def test_second_creator_keeps_the_first_key(tmp_path: Path) -> None:
    first = HubKeys.load_or_create(tmp_path)
    from hub.access.keys import _write_keyset, generate_key

    other = generate_key()
    _write_keyset(tmp_path / KEYS_FILE, [other], other.kid or "", exclusive=True)  # loses the race
    assert HubKeys.load_or_create(tmp_path).active_kid == first.active_kid
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".jwks-")]  # no temp files left


def test_signed_token_verifies_with_the_public_key(tmp_path: Path) -> None:
    keys = HubKeys.load_or_create(tmp_path)
    token = keys.sign({"sub": "x"})
    public = keys.verification_key(keys.active_kid)
    assert public is not None and not public.is_private
    decoded = jwt.decode(token, public, algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "kid": keys.active_kid, "typ": "at+jwt"}
    assert decoded.claims == {"sub": "x"}


def test_eddsa_keys_sign_and_verify_without_warnings(tmp_path: Path) -> None:
    keys = HubKeys.load_or_create(tmp_path, alg="EdDSA")
    assert keys.alg == "EdDSA"
    assert keys.public_jwks()["keys"][0]["crv"] == "Ed25519"
    token = keys.sign({"sub": "x"})  # filterwarnings=error: a SecurityWarning would fail here
    key = keys.verification_key(keys.active_kid)
    assert key is not None
    assert jwt.decode(token, key, registry=jws_registry()).claims == {"sub": "x"}


def test_unsupported_signing_algorithm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported signing algorithm"):
        HubKeys.load_or_create(tmp_path, alg="HS256")


def test_tampered_kid_in_file_is_refused(tmp_path: Path) -> None:
    keys = HubKeys.load_or_create(tmp_path)
    path = tmp_path / KEYS_FILE
    data = orjson.loads(path.read_bytes())
    data["keys"][0]["kid"] = data["active"] = "not-the-thumbprint"
    path.write_bytes(orjson.dumps(data))
    with pytest.raises(ValueError, match="thumbprint"):
        HubKeys.load_or_create(tmp_path)
    assert keys.active_kid != "not-the-thumbprint"


async def test_rotation_keeps_old_tokens_valid_until_retired(tmp_path: Path) -> None:
    config = _config(tmp_path)
    keys = HubKeys.load_or_create(tmp_path)
    verifier = TokenVerifier(config, keys)
    old_kid = keys.active_kid
    old_token = keys.sign(_claims(config))
    assert (await verifier.verify(old_token)).kind == "admin"

    new_kid = rotate_keys(tmp_path)
    assert new_kid != old_kid
    assert stat.S_IMODE((tmp_path / KEYS_FILE).stat().st_mode) == 0o600
    assert keys.refresh(min_interval=0)  # another process would notice by mtime/inode
    assert keys.active_kid == new_kid and set(keys.kids) == {old_kid, new_kid}
    assert {k["kid"] for k in keys.public_jwks()["keys"]} == {old_kid, new_kid}
    new_token = keys.sign(_claims(config))
    assert (await verifier.verify(new_token)).kind == "admin"
    assert (await verifier.verify(old_token)).kind == "admin"

    retire_key(tmp_path, old_kid)
    assert keys.refresh(min_interval=0)
    assert keys.kids == (new_kid,)
    with pytest.raises(Unauthorized, match="unknown key id"):
        await verifier.verify(old_token)  # the cached result was dropped with the key
    assert (await verifier.verify(new_token)).kind == "admin"


def test_active_key_cannot_be_retired(tmp_path: Path) -> None:
    keys = HubKeys.load_or_create(tmp_path)
    with pytest.raises(ValueError, match="active key"):
        retire_key(tmp_path, keys.active_kid)
    with pytest.raises(KeyError):
        retire_key(tmp_path, "unknown")


def test_refresh_is_rate_limited_and_in_memory_sets_never_change(tmp_path: Path) -> None:
    keys = HubKeys.load_or_create(tmp_path)
    rotate_keys(tmp_path)
    assert not keys.refresh(min_interval=3600)  # checked at load: not again within the interval
    memory = HubKeys.in_memory()
    assert not memory.refresh(min_interval=0)
    assert memory.verification_key(memory.active_kid) is not None


def test_broken_or_missing_file_keeps_the_loaded_keys(tmp_path: Path) -> None:
    keys = HubKeys.load_or_create(tmp_path)
    kid = keys.active_kid
    (tmp_path / KEYS_FILE).write_bytes(b"{not json")
    assert not keys.refresh(min_interval=0)
    (tmp_path / KEYS_FILE).unlink()
    assert not keys.refresh(min_interval=0)
    assert keys.active_kid == kid and keys.verification_key(kid) is not None
