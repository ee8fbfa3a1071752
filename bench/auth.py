"""Bearer tokens for benchmark requests, minted like ``hub token --as SPEC`` does.

The tokens are signed with the keys of the server under test: the CLI runs with the same ``HUB_*``
environment (``HUB_VAR_DIR`` above all). While the hub has no ``token`` command, :func:`token_for`
returns None and requests go without an ``Authorization`` header.

Loading 100k clients needs a token for each loading organisation, and a CLI call costs a Python
start-up (about a second), so :class:`TokenCache` mints in-process through the same function the
CLI calls (``hub.access.authserver.token_for``) when it is importable, and falls back to the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

#: Long enough for a full run; the default lifetime of a dev token may be shorter than a run.
LIFETIME_S = 8 * 3600


def hub_command() -> str:
    """The ``hub`` console script next to the running interpreter."""
    return str(Path(sys.executable).parent / "hub")


def token_for(spec: str, env: Mapping[str, str] | None = None) -> str | None:
    """A token for ``spec`` ('org:<URA>:practitioner:<UZI>', 'client:<BSN>', 'admin'), or None.

    None when the hub has no ``token`` command yet (every request is allowed then); any other failure
    is an error, because a benchmark that silently runs unauthenticated measures the wrong thing.
    """
    environment = {**os.environ, **(env or {})}
    proc = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [hub_command(), "token", "--as", spec, "--lifetime", str(LIFETIME_S)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        message = proc.stderr + proc.stdout
        if "no such command" in message.lower():
            return None
        raise RuntimeError(f"hub token --as {spec} failed ({proc.returncode}): {message.strip()[:500]}")
    lines = proc.stdout.strip().splitlines()
    return lines[-1].strip() if lines else None


class TokenCache:
    """One token per spec for the duration of a run."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env or {})
        self._tokens: dict[str, str | None] = {}

    @cached_property
    def _minter(self) -> Any:
        """The in-process minting function bound to the server's settings, or None (use the CLI)."""
        try:
            from hub.access.authserver import token_for as mint
            from hub.access.wiring import auth_config
            from hub.settings import Settings
        except ImportError:
            return None
        values = {k[4:].lower(): v for k, v in self.env.items() if k.startswith("HUB_")}
        config = auth_config(Settings(**values))
        return lambda spec: mint(spec, config, lifetime=LIFETIME_S)

    def token(self, spec: str) -> str | None:
        if spec not in self._tokens:
            if not self._tokens:  # the first one through the CLI: it is the reference path
                self._tokens[spec] = token_for(spec, self.env)
            elif self._minter is not None and any(self._tokens.values()):
                self._tokens[spec] = self._minter(spec)
            else:
                self._tokens[spec] = token_for(spec, self.env)
        return self._tokens[spec]

    def headers(self, spec: str) -> dict[str, str]:
        token = self.token(spec)
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def authenticated(self) -> bool:
        """Whether requests carry tokens (False while the hub has no ``token`` command)."""
        return any(self._tokens.values())


__all__ = ["LIFETIME_S", "TokenCache", "hub_command", "token_for"]
