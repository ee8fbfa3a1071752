"""Bulk Data status, download and cancel (the kick-off is :mod:`hub.api.operations.export`).

- ``GET /fhir/bulkstatus/{job}``: 202 with ``X-Progress`` and ``Retry-After`` while the export
  runs; 200 with the manifest when it is done; 500 with an OperationOutcome when it failed.
- ``DELETE /fhir/bulkstatus/{job}``: cancels a running export, or deletes a finished one's files.
- ``GET /fhir/bulkfiles/{job}/{file}``: one NDJSON file (``requiresAccessToken`` is true).

Only the requester (the same app acting as the same subject) may poll, download or cancel; anyone
else is told the job does not exist. Every call is authenticated and audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from hub.api.accesslog import current_request_id
from hub.api.context import Services
from hub.api.negotiate import Format, fhir_response
from hub.audit.trail import AuditTrail
from hub.bulk.jobs import ExportManager, owner_of
from hub.fhir.errors import FhirError, NotFound
from hub.fhir.instants import to_iso

router = APIRouter()

NDJSON_MEDIA = "application/fhir+ndjson"


def _manager(services: Services) -> ExportManager:
    exports = services.extras.get("exports")
    if not isinstance(exports, ExportManager):
        raise NotFound("Bulk export is not available on this server", code="not-supported")
    return exports


async def _owned_job(request: Request, job_id: str, trail: AuditTrail) -> tuple[ExportManager, dict[str, Any]]:
    """The job, if the caller is the one who kicked it off (else 404: no such job for them)."""
    services: Services = request.app.state.services
    principal = await services.verifier.verify_authorization(request.headers.get("authorization"))
    trail.principal = principal
    exports = _manager(services)
    job = await exports.job(job_id)
    if job is None or job["owner"] != owner_of(principal) or job["status"] == "cancelled":
        raise NotFound(f"There is no export {job_id}")
    return exports, job


def _trail(request: Request, operation: str) -> AuditTrail:
    services: Services = request.app.state.services
    trail = AuditTrail(
        services.audit,
        request.method,
        request.url.path.partition("/fhir/")[2],
        request.url.query,
        remote_addr=request.client.host if request.client else None,
        interaction="operation",
        request_id=current_request_id(),
    )
    trail.operation = operation
    return trail


async def _audited(trail: AuditTrail, call: Any) -> Response:
    try:
        response: Response = await call()
    except FhirError as exc:
        await trail.finish(exc.status, denial_reason=exc.diagnostics if exc.status in (401, 403, 404) else None)
        raise
    except Exception:
        await trail.finish(500)
        raise
    await trail.finish(response.status_code)
    return response


@router.get("/fhir/bulkstatus/{job_id}", include_in_schema=False)
async def export_status(request: Request, job_id: str) -> Response:
    trail = _trail(request, "export-status")

    async def answer() -> Response:
        _exports, job = await _owned_job(request, job_id, trail)
        return status_response(job)

    return await _audited(trail, answer)


@router.delete("/fhir/bulkstatus/{job_id}", include_in_schema=False)
async def export_cancel(request: Request, job_id: str) -> Response:
    trail = _trail(request, "export-cancel")

    async def answer() -> Response:
        exports, job = await _owned_job(request, job_id, trail)
        await exports.cancel(job["job_id"])
        return Response(status_code=202)

    return await _audited(trail, answer)


@router.get("/fhir/bulkfiles/{job_id}/{name}", include_in_schema=False)
async def export_file_download(request: Request, job_id: str, name: str) -> Response:
    trail = _trail(request, "export-download")

    async def answer() -> Response:
        exports, job = await _owned_job(request, job_id, trail)
        if job["status"] != "completed" or name not in {f["name"] for f in job["files"]}:
            raise NotFound(f"The export {job_id} has no file {name}")
        return FileResponse(exports.file_path(job_id, name), media_type=NDJSON_MEDIA)

    return await _audited(trail, answer)


def status_response(job: dict[str, Any]) -> Response:
    """202 + progress while running, 200 + manifest when completed, 500 + outcome when failed."""
    status = job["status"]
    if status in ("queued", "in-progress"):
        total = job["total"]
        progress = (
            f"{status}: {job['done']} of {total} resources ({100 * job['done'] // total if total else 0}%)"
            if total is not None
            else f"{status}: counting"
        )
        return Response(status_code=202, headers={"X-Progress": progress, "Retry-After": "1"})
    if status == "failed":
        issue = {"severity": "error", "code": "exception", "diagnostics": job["error"] or "The export failed"}
        return fhir_response({"resourceType": "OperationOutcome", "issue": [issue]}, Format(), 500)
    context_base = _base(job)
    manifest = {
        "transactionTime": to_iso(job["transaction_time"]),
        "request": job["request_url"],
        "requiresAccessToken": True,
        "output": [
            {"type": f["res_type"], "url": f"{context_base}/bulkfiles/{job['job_id']}/{f['name']}", "count": f["count"]}
            for f in job["files"]
        ],
        "error": [],
    }
    return fhir_response(manifest, Format(), 200)


def _base(job: dict[str, Any]) -> str:
    from hub.fhir import jsonio

    return str(jsonio.loads(job["principal"])["base"])


__all__ = ["router", "status_response"]
