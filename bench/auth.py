"""Bearer tokens for benchmark requests, minted by the hub's own CLI (``hub token --as SPEC``).

The CLI runs with the same ``HUB_*`` environment as the server under test (``HUB_VAR_DIR`` above all,
so it signs with the server's keys). While the hub has no ``token`` command, :func:`token_for`
returns None and requests go without an ``Authorization`` header.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def hub_command() -> str:
    """The ``hub`` console script next to the running interpreter."""
    return str(Path(sys.executable).parent / "hub")


def token_for(spec: str, env: Mapping[str, str] | None = None) -> str | None:
    """A token for ``spec`` ('org:<URA>:practitioner:<UZI>', 'client:<BSN>', 'admin'), or None.

    None when the hub has no ``token`` command yet (so every request is allowed anyway); any other
    failure is an error, because a benchmark that silently runs unauthenticated measures the wrong thing.
    """
    environment = {**os.environ, **(env or {})}
    proc = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [hub_command(), "token", "--as", spec], env=environment, capture_output=True, text=True, timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        message = proc.stderr + proc.stdout
        if "No such command" in message or "no such command" in message.lower():
            return None
        raise RuntimeError(f"hub token --as {spec} failed ({proc.returncode}): {message.strip()[:500]}")
    token = proc.stdout.strip().splitlines()[-1].strip() if proc.stdout.strip() else ""
    return token or None


class TokenCache:
    """One token per spec for the duration of a run (minting costs a Python start-up)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env or {})
        self._tokens: dict[str, str | None] = {}

    def headers(self, spec: str) -> dict[str, str]:
        if spec not in self._tokens:
            self._tokens[spec] = token_for(spec, self.env)
        token = self._tokens[spec]
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def authenticated(self) -> bool:
        """Whether any request carried a token (False while the hub has no ``token`` command)."""
        return any(self._tokens.values())


__all__ = ["TokenCache", "hub_command", "token_for"]
