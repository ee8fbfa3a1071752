"""Who is calling, and what they may do: authentication (tokens, the hub's own authorization
server) and the one access decision (:mod:`hub.access.policy`; the questions every decision answers
and the hub's own, :mod:`hub.access.decision`), with the derived facts it rests on
(:mod:`hub.access.facts`, :mod:`hub.access.grants`).

The names below are loaded on first use, so that the command line (``hub token``) does not pay for
the database and web layers it does not need.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CATEGORIES": "hub.access.grants",
    "decide": "hub.access.grants",
    "explain": "hub.access.grants",
    "Policy": "hub.access.decision",
    "SYSTEM": "hub.access.decision",
    "SystemPolicy": "hub.access.decision",
    "AccessPolicy": "hub.access.policy",
    "build_policy": "hub.access.policy",
    "Principal": "hub.access.principal",
    "AuthConfig": "hub.access.tokens",
    "TokenVerifier": "hub.access.tokens",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'hub.access' has no attribute {name!r}")


__all__ = [
    "CATEGORIES",
    "SYSTEM",
    "AccessPolicy",
    "AuthConfig",
    "Policy",
    "Principal",
    "SystemPolicy",
    "TokenVerifier",
    "build_policy",
    "decide",
    "explain",
]
