"""Signed checkpoints: every N records or T seconds the chain head is sealed with Ed25519.

A checkpoint says "up to and including record ``seq`` the chain hash is ``hash``", signed with
the hub's audit key. Anyone with write access to the database can recompute a hash chain, but
not forge a signature: a checkpoint turns "the rows agree with each other" into "the rows are
the ones the hub wrote".

Keys live in ``<var_dir>/audit-keys/keyring.json`` (mode 0600, directory 0700): a list of
Ed25519 keys with ``kid`` = first 16 hex digits of SHA-256 of the raw public key, and the kid of
the active one. Rotation adds a key and makes it active; retiring drops a private key but keeps
its public half, so every checkpoint ever signed still verifies. Several worker processes share
the file: changes are atomic replaces under a lock file, readers reload when its stamp changes.

Every checkpoint is also appended to ``<var_dir>/audit-keys/witness.ndjson``. The database
alone cannot prove that its tail was not cut off together with the checkpoints over it; the
witness file (shipped elsewhere in production, like a transparency log's witness) can.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from hub.keyfiles import file_stamp, locked, write_private_json

KEYRING_FILE = "keyring.json"
WITNESS_FILE = "witness.ndjson"
_LOCK_FILE = "keyring.lock"
_DOMAIN = b"zorgnet-hub audit checkpoint v1\n"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One sealed point of the chain (a row of ``audit_checkpoint``)."""

    seq: int
    hash: str
    created_us: int
    key_id: str
    signature: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "created": self.created_us,
            "kid": self.key_id,
            "sig": self.signature,
        }


def signed_message(seq: int, chain_hash: str, created_us: int, key_id: str) -> bytes:
    """The exact bytes a checkpoint signature covers (domain-separated, one field per line)."""
    return _DOMAIN + f"{seq}\n{chain_hash}\n{created_us}\n{key_id}".encode("ascii")


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AuditKeyring:
    """The audit signing keys of one hub (private keys where present, public keys always)."""

    def __init__(self, path: Path | None, data: dict[str, Any]) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._load(data)

    # -- construction --------------------------------------------------------------------------------------
    @classmethod
    def load_or_create(cls, key_dir: Path | str) -> AuditKeyring:
        """Read ``<key_dir>/keyring.json``, creating it with one key when absent (call at startup)."""
        path = Path(key_dir) / KEYRING_FILE
        if not path.exists():
            with locked(path, _LOCK_FILE):
                if not path.exists():
                    write_private_json(path, _new_keyring())
        ring = cls(path, orjson.loads(path.read_bytes()))
        ring._stamp = file_stamp(path)
        return ring

    @classmethod
    def load(cls, key_dir: Path | str) -> AuditKeyring:
        """Read an existing keyring (verification: never creates keys)."""
        path = Path(key_dir) / KEYRING_FILE
        return cls(path, orjson.loads(path.read_bytes()))

    @classmethod
    def in_memory(cls) -> AuditKeyring:
        """An unsaved keyring (unit tests, benchmarks)."""
        return cls(None, _new_keyring())

    def _load(self, data: dict[str, Any]) -> None:
        private: dict[str, Ed25519PrivateKey] = {}
        public: dict[str, Ed25519PublicKey] = {}
        for entry in data.get("keys", []):
            pub = Ed25519PublicKey.from_public_bytes(_unb64(entry["public"]))
            kid = key_id(pub)
            if kid != entry["kid"]:
                raise ValueError(f"{self.path}: kid {entry['kid']} does not match its public key")
            public[kid] = pub
            if entry.get("private"):
                private[kid] = Ed25519PrivateKey.from_private_bytes(_unb64(entry["private"]))
        active = data.get("active")
        if active not in private:
            raise ValueError(f"{self.path}: 'active' must name a key with its private half")
        self._private, self._public, self._active = private, public, str(active)

    # -- use -----------------------------------------------------------------------------------------------
    @property
    def active_kid(self) -> str:
        return self._active

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._public)

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        return self._public.get(kid)

    def refresh(self) -> bool:
        """Reload when another process rotated the keys; returns whether anything changed."""
        if self.path is None:
            return False
        stamp = file_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._load(orjson.loads(self.path.read_bytes()))
        self._stamp = stamp
        return True

    def sign(self, seq: int, chain_hash: str, created_us: int | None = None) -> Checkpoint:
        """A checkpoint over (seq, hash), signed with the active key."""
        created = created_us if created_us is not None else time.time_ns() // 1000
        kid = self._active
        sig = self._private[kid].sign(signed_message(seq, chain_hash, created, kid))
        return Checkpoint(seq, chain_hash, created, kid, _b64(sig))

    def check(self, cp: Checkpoint) -> str | None:
        """``None`` when the signature is valid, else why not."""
        pub = self._public.get(cp.key_id)
        if pub is None:
            return f"signed with unknown key {cp.key_id!r}"
        try:
            pub.verify(_unb64(cp.signature), signed_message(cp.seq, cp.hash, cp.created_us, cp.key_id))
        except (InvalidSignature, ValueError):
            return f"signature does not verify with key {cp.key_id}"
        return None


def rotate(key_dir: Path | str) -> str:
    """Add a new key and make it active; returns its kid. Old checkpoints keep verifying."""
    path = Path(key_dir) / KEYRING_FILE
    with locked(path, _LOCK_FILE):
        data = orjson.loads(path.read_bytes()) if path.exists() else {"keys": []}
        fresh = _new_keyring()
        data = {"active": fresh["active"], "keys": fresh["keys"] + list(data["keys"])}
        write_private_json(path, data)
    return str(fresh["active"])


def retire(key_dir: Path | str, kid: str) -> None:
    """Destroy the private half of a non-active key (its public half stays for verification)."""
    path = Path(key_dir) / KEYRING_FILE
    with locked(path, _LOCK_FILE):
        data = orjson.loads(path.read_bytes())
        if data["active"] == kid:
            raise ValueError("the active key cannot be retired; rotate first")
        found = False
        for entry in data["keys"]:
            if entry["kid"] == kid:
                entry["private"] = None
                found = True
        if not found:
            raise KeyError(kid)
        write_private_json(path, data)


def append_witness(key_dir: Path | str, cp: Checkpoint) -> None:
    """Append one checkpoint line to the witness file (O_APPEND: lines of concurrent workers don't mix)."""
    path = Path(key_dir) / WITNESS_FILE
    line = orjson.dumps(cp.as_json()) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_witness(key_dir: Path | str) -> list[Checkpoint]:
    """The witnessed checkpoints (empty when there is no witness file)."""
    path = Path(key_dir) / WITNESS_FILE
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().splitlines():
        if raw.strip():
            d = orjson.loads(raw)
            out.append(Checkpoint(int(d["seq"]), d["hash"], int(d["created"]), d["kid"], d["sig"]))
    return out


def _new_keyring() -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    kid = key_id(pub)
    entry = {
        "kid": kid,
        "created": time.time_ns() // 1000,
        "public": _b64(pub.public_bytes(Encoding.Raw, PublicFormat.Raw)),
        "private": _b64(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())),
    }
    return {"active": kid, "keys": [entry]}


__all__ = [
    "KEYRING_FILE",
    "WITNESS_FILE",
    "AuditKeyring",
    "Checkpoint",
    "append_witness",
    "key_id",
    "read_witness",
    "retire",
    "rotate",
    "signed_message",
]
