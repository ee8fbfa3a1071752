"""Registering an adapter with a live hub as the hub's operator would: ``hub apps add --system``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from joserfc.jwk import ECKey


@dataclass(frozen=True)
class Registered:
    client_id: str
    key_file: Path
    ura: str


def register_system_app(env: dict[str, str], work: Path, name: str, ura: str) -> Registered:
    """A new key pair for the adapter; its public key registered with the hub; the private key kept."""
    key = ECKey.generate_key("P-256", private=True)
    private = work / f"{name}-key.pem"
    public = work / f"{name}-pub.pem"
    private.write_bytes(key.as_pem(private=True))
    public.write_bytes(key.as_pem(private=False))
    hub = Path(sys.executable).parent / "hub"
    out = subprocess.run(  # noqa: S603
        [str(hub), "apps", "add", "--system", "--name", name, "--ura", ura, "--public-key", str(public)],
        env=env,
        capture_output=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"hub apps add failed: {out.stderr.decode(errors='replace')}")
    return Registered(str(json.loads(out.stdout)["client_id"]), private, ura)
