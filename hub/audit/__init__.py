"""The access log (NEN 7513): every interaction as a BALP-shaped AuditEvent, hash-chained in one
total order, sealed by Ed25519-signed checkpoints, verifiable with ``hub audit verify``.

Pieces: :mod:`records` (what is logged), :mod:`canonical` (JCS bytes), :mod:`chain` (hashes),
:mod:`checkpoints` (keys, signatures, witness), :mod:`tables`, :mod:`writer` (group commit),
:mod:`verify`, :mod:`export`, :mod:`search` (AuditEvent read/search), :mod:`cli`.
Submodules are imported lazily by their users; this package imports nothing at import time.
"""

__all__ = [
    "canonical",
    "chain",
    "checkpoints",
    "cli",
    "export",
    "records",
    "search",
    "tables",
    "verify",
    "writer",
]
