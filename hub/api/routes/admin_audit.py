"""``GET /admin/audit/verify``: the audit chain's status for the administrator's console.

The same check as ``hub audit verify`` (hash chain, index rows, checkpoint signatures, witness
file), answered as JSON for an admin token only. It reads the whole log, so it is meant for a
person pressing a button, not for monitoring loops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from hub.fhir.errors import Forbidden

router = APIRouter()


@router.get("/admin/audit/verify", include_in_schema=False)
async def verify_audit_chain(request: Request) -> JSONResponse:
    from hub.audit.checkpoints import KEYRING_FILE, AuditKeyring
    from hub.audit.verify import verify_log

    services = request.app.state.services
    principal = await services.verifier.verify_authorization(request.headers.get("authorization"))
    if not principal.is_admin:
        raise Forbidden("Only an administrator may verify the audit log")
    key_dir = Path(services.settings.var_dir) / "audit-keys"
    keyring = AuditKeyring.load(key_dir) if (key_dir / KEYRING_FILE).exists() else None
    async with services.repo.reading(None) as conn:
        result = await verify_log(conn, keyring=keyring, witness_dir=key_dir)
    body: dict[str, Any] = {
        "ok": result.ok,
        "summary": result.summary(),
        "records": result.records,
        "checkpoints": result.checkpoints,
        "last_seq": result.last_seq,
        "unsealed": result.unsealed,
        "signatures_checked": result.signatures_checked,
        "seconds": round(result.seconds, 3),
        "problems": [{"seq": p.seq, "reason": p.reason} for p in sorted(result.problems, key=lambda p: p.seq)[:20]],
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
