"""The hub's own signing keys: created on first use, kept on disk, rotated without downtime.

The key set lives in ``<key_dir>/jwks.json`` (mode 0600, directory 0700) as a JWK Set with the
private keys plus one extra top-level member, ``"active"``: the kid that signs new tokens. Every
kid is the RFC 7638 thumbprint of its key. Rotation adds a key and makes it active; the old keys
stay in the set (and in the public JWKS) so tokens they signed keep verifying until an operator
retires them. Several worker processes share the file: creation is create-if-absent (a hard link
of a finished temp file), changes are atomic replaces under a lock file, and readers notice a
change by the file's mtime/size (:meth:`HubKeys.refresh`).

joserfc warns on every use of the ``EdDSA`` algorithm name (RFC 9864 deprecates it in favour of
``Ed25519``). Many clients still send ``EdDSA``, and with ``-W error`` a warning would become an
exception on the request path, so :func:`jws_registry` carries a copy of the algorithm without
the warning.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, import_key
from joserfc.jws import JWSRegistry

from hub.keyfiles import file_stamp, locked, write_private_json

log = logging.getLogger(__name__)

KEYS_FILE = "jwks.json"
LOCK_FILE = "jwks.lock"

#: Algorithms the hub can sign its own tokens with, and the key each needs.
SIGNING_ALGS: dict[str, tuple[str, str]] = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}

#: Asymmetric algorithms accepted on tokens and client assertions (no ``none``, no ``HS*``).
#: RS384/ES384 are what SMART Backend Services clients are required to support.
VERIFY_ALGS: frozenset[str] = frozenset({"RS256", "RS384", "ES256", "ES384", "EdDSA", "Ed25519"})


@functools.cache
def jws_registry(algorithms: frozenset[str] = VERIFY_ALGS) -> JWSRegistry:
    """A JWS registry allowing exactly ``algorithms``, with a warning-free ``EdDSA``."""
    quiet = copy.copy(JWSRegistry.algorithms["EdDSA"])
    quiet.security_warning = None

    class _Registry(JWSRegistry):
        algorithms = {**JWSRegistry.algorithms, "EdDSA": quiet}

    return _Registry(algorithms=sorted(algorithms), strict_check_header=False)


def generate_key(alg: str = "ES256") -> Key:
    """A new private signing key for ``alg``, with kid = RFC 7638 thumbprint."""
    if alg not in SIGNING_ALGS:
        raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {sorted(SIGNING_ALGS)}")
    key: Key = ECKey.generate_key("P-256") if SIGNING_ALGS[alg][0] == "EC" else OKPKey.generate_key("Ed25519")
    return import_key({**key.as_dict(private=True), "alg": alg, "use": "sig", "kid": key.thumbprint()})


class HubKeys:
    """The key set of one hub: signs access tokens, resolves kids for verification.

    Create with :meth:`load_or_create` (file I/O: call it at startup, not at import time).
    """

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        #: Bumped whenever the set changes, so verifiers know to drop cached results.
        self.version = 0
        self._load(data)

    @classmethod
    def load_or_create(cls, key_dir: Path | str, alg: str = "ES256") -> HubKeys:
        """Read ``<key_dir>/jwks.json``, creating it with one ``alg`` key if it does not exist."""
        path = Path(key_dir) / KEYS_FILE
        if not path.exists():
            key = generate_key(alg)
            _write_keyset(path, [key], key.kid or "", exclusive=True)
        keys = cls(path, _read_keyset(path))
        keys._stamp = file_stamp(path)
        keys._checked = time.monotonic()
        return keys

    @classmethod
    def in_memory(cls, alg: str = "ES256") -> HubKeys:
        """An unsaved key set (tests, one-shot tools); :meth:`refresh` never changes it."""
        key = generate_key(alg)
        return cls(Path(os.devnull), _keyset_data([key], key.kid or ""))

    def _load(self, data: Mapping[str, Any]) -> None:
        keys = [import_key(k) for k in data.get("keys", [])]
        by_kid = {k.kid: k for k in keys if k.kid}
        active = data.get("active")
        if not isinstance(active, str) or active not in by_kid:
            raise ValueError(f"{self.path}: 'active' must name one of the keys in the set")
        for kid, key in by_kid.items():
            if key.thumbprint() != kid:
                raise ValueError(f"{self.path}: kid {kid} is not the RFC 7638 thumbprint of its key")
        self._keys = by_kid
        self._public = {kid: import_key(k.as_dict(private=False)) for kid, k in by_kid.items()}
        self._active = by_kid[active]
        self._active_alg = str(self._active.alg or "ES256")
        self._jwks = {"keys": [k.as_dict(private=False) for k in self._public.values()]}
        self.version += 1

    @property
    def active_kid(self) -> str:
        return str(self._active.kid)

    @property
    def alg(self) -> str:
        return self._active_alg

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def public_jwks(self) -> dict[str, Any]:
        """The public JWK Set, as served at ``/.well-known/jwks.json``."""
        return self._jwks

    def verification_key(self, kid: str) -> Key | None:
        """The public key with this kid, or ``None``."""
        return self._public.get(kid)

    def sign(self, claims: dict[str, Any], *, typ: str = "at+jwt") -> str:
        """Sign ``claims`` as a compact JWT with the active key (RFC 9068 ``typ`` by default)."""
        header = {"alg": self._active_alg, "kid": self.active_kid, "typ": typ}
        return jwt.encode(header, claims, self._active, algorithms=[self._active_alg], registry=jws_registry())

    def refresh(self, min_interval: float = 5.0) -> bool:
        """Re-read the key file if another process changed it; at most once per ``min_interval``.

        Returns whether the set changed.
        """
        if self.path == Path(os.devnull):
            return False
        now = time.monotonic()
        if now - self._checked < min_interval:
            return False
        self._checked = now
        try:
            stamp = file_stamp(self.path)
            if stamp == self._stamp:
                return False
            data = _read_keyset(self.path)
            self._load(data)
        except (OSError, ValueError, TypeError, KeyError, JoseError) as exc:  # keep the keys we have
            log.error("cannot reload %s: %s", self.path, exc)
            return False
        self._stamp = stamp
        return True


def rotate_keys(key_dir: Path | str, alg: str = "ES256") -> str:
    """Add a new key and make it the active one; the old keys stay for verification. Returns its kid."""
    path = Path(key_dir) / KEYS_FILE
    with locked(path, LOCK_FILE):
        data = _read_keyset(path) if path.exists() else {"keys": []}
        key = generate_key(alg)
        keys = [key, *(import_key(k) for k in data["keys"])]
        _write_keyset(path, keys, key.kid or "")
    return str(key.kid)


def retire_key(key_dir: Path | str, kid: str) -> None:
    """Remove a (non-active) key: tokens it signed stop verifying."""
    path = Path(key_dir) / KEYS_FILE
    with locked(path, LOCK_FILE):
        data = _read_keyset(path)
        if data.get("active") == kid:
            raise ValueError("the active key cannot be retired; rotate first")
        keys = [import_key(k) for k in data["keys"] if k.get("kid") != kid]
        if len(keys) == len(data["keys"]):
            raise KeyError(kid)
        _write_keyset(path, keys, str(data["active"]))


def _keyset_data(keys: list[Key], active: str) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=True) for k in keys], "active": active}


def _read_keyset(path: Path) -> dict[str, Any]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by others (mode %o); it holds private keys", path, stat.S_IMODE(mode))
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError(f"{path}: not a JWK Set")
    return data


def _write_keyset(path: Path, keys: list[Key], active: str, *, exclusive: bool = False) -> None:
    """Write atomically with mode 0600; with ``exclusive``, only if no file exists yet."""
    write_private_json(path, _keyset_data(keys, active), exclusive=exclusive)


__all__ = [
    "KEYS_FILE",
    "SIGNING_ALGS",
    "VERIFY_ALGS",
    "HubKeys",
    "generate_key",
    "jws_registry",
    "retire_key",
    "rotate_keys",
]
