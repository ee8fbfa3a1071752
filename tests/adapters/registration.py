"""Registering an adapter with a live hub as the hub's operator would: ``hub apps add --system``.

Until the hub has that command, the same registration is written with the hub's own storage
function in a separate process (the test side may use hub internals; the adapter never does).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from joserfc.jwk import ECKey

_FALLBACK = r"""
import asyncio, json, sys
from hub.settings import get_settings
from hub.store.db import Database
from hub.access.clients import RegisteredClient, register_client
from joserfc.jwk import import_key

async def main():
    name, ura, pem, client_id = sys.argv[1:5]
    key = import_key(open(pem, "rb").read(), "EC")
    jwk = key.as_dict(private=False)
    jwk["kid"] = key.thumbprint()
    db = Database(get_settings().database_url)
    try:
        async with db.write() as conn:
            await register_client(conn, RegisteredClient(client_id, "system", name, organisation_ura=ura,
                                  jwks={"keys": [jwk]}, allowed_scopes=frozenset({"system/*.cruds"})))
    finally:
        await db.dispose()
    print(json.dumps({"client_id": client_id, "kind": "system"}))

asyncio.run(main())
"""


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
    if out.returncode == 0:
        return Registered(str(json.loads(out.stdout)["client_id"]), private, ura)
    if b"No such command" not in out.stderr:
        raise RuntimeError(f"hub apps add failed: {out.stderr.decode(errors='replace')}")
    client_id = f"{name}-client"
    fallback = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _FALLBACK, name, ura, str(public), client_id],
        env=env,
        capture_output=True,
        check=False,
    )
    if fallback.returncode != 0:
        raise RuntimeError(f"registration failed: {fallback.stderr.decode(errors='replace')}")
    return Registered(client_id, private, ura)
