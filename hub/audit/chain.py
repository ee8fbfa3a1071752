"""The hash chain: each record's hash covers its predecessor's hash, its position and its JSON.

``hash(n) = SHA-256(hash(n-1) || seq(n) as 8 bytes big-endian || canonical_json(n))``, with 32
zero bytes before the first record. Binding ``seq`` into the hash (beyond what the issue asks)
makes every record's position part of what is signed, so an exported line can be checked
against its predecessor on its own and renumbering is caught even without a checkpoint.
Hashes are kept as lowercase hex (64 characters): readable in SQL, exports and reports.
"""

from __future__ import annotations

import hashlib

#: The "previous hash" of the first record.
GENESIS = "0" * 64


#: A fresh SHA-256 to copy: ``hashlib.sha256()`` looks the digest up in OpenSSL on every call.
_SHA256 = hashlib.sha256()


def link_hash(prev_hash: str, seq: int, event: bytes) -> str:
    """The chain hash of record ``seq`` with canonical JSON ``event`` after ``prev_hash``."""
    h = _SHA256.copy()
    h.update(bytes.fromhex(prev_hash))
    h.update(seq.to_bytes(8, "big"))
    h.update(event)
    return h.hexdigest()


def chain(prev_hash: str, first_seq: int, events: list[bytes]) -> list[tuple[int, str, str]]:
    """(seq, prev_hash, hash) for consecutive ``events`` appended after ``prev_hash``."""
    out = []
    seq = first_seq
    for event in events:
        h = link_hash(prev_hash, seq, event)
        out.append((seq, prev_hash, h))
        prev_hash = h
        seq += 1
    return out


__all__ = ["GENESIS", "chain", "link_hash"]
