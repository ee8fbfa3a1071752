"""Hash chain and signed checkpoints (keys in memory: no file I/O here)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from hub.audit.chain import GENESIS, chain, link_hash
from hub.audit.checkpoints import AuditKeyring


def test_link_hash_definition() -> None:
    expected = hashlib.sha256(bytes(32) + (1).to_bytes(8, "big") + b"{}").hexdigest()
    assert link_hash(GENESIS, 1, b"{}") == expected


def test_chain_links_consecutive_records() -> None:
    links = chain(GENESIS, 1, [b"a", b"b", b"c"])
    assert [s for s, _, _ in links] == [1, 2, 3]
    assert links[0][1] == GENESIS
    assert links[1][1] == links[0][2] and links[2][1] == links[1][2]
    # position is bound: the same content elsewhere hashes differently
    assert link_hash(GENESIS, 2, b"a") != links[0][2]


def test_checkpoint_signature_verifies_and_detects_changes() -> None:
    ring = AuditKeyring.in_memory()
    cp = ring.sign(100, "ab" * 32, created_us=1)
    assert ring.check(cp) is None
    assert ring.check(replace(cp, seq=101)) is not None
    assert ring.check(replace(cp, hash="cd" * 32)) is not None
    other = AuditKeyring.in_memory().sign(100, "ab" * 32, created_us=1)
    assert "unknown key" in (ring.check(other) or "")
    assert "does not verify" in (ring.check(replace(cp, signature=other.signature)) or "")


def test_sign_speed() -> None:
    import time

    ring = AuditKeyring.in_memory()
    t = time.perf_counter()
    for i in range(200):
        ring.check(ring.sign(i, "00" * 32))
    assert (time.perf_counter() - t) / 200 < 0.005  # a checkpoint costs well under 5 ms
