"""The adapter's small HTTP endpoint where eOverdracht senders notify: ``POST /senders/{id}/Task``.

The notification Task is handed to :class:`~adapters.wijkverpleging.receiver.Receiver`; the answer says
what happened: 201 with the hub's Task id, 422 with an OperationOutcome naming the offending resource
when the transfer was refused (parked), 503 when the hub or the sender could not be reached (the sender
notifies again), 404 for a sender that is not configured.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.common.errors import HubError, HubUnavailable
from adapters.wijkverpleging.receiver import Receiver
from adapters.wijkverpleging.sender_api import CounterpartUnavailable, TransferError

FHIR_JSON = "application/fhir+json"


def _outcome(status: int, code: str, text: str, where: str | None = None) -> JSONResponse:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": text}
    if where:
        issue["expression"] = [where]
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [issue]}, status, media_type=FHIR_JSON)


def build_app(receiver: Receiver, senders: dict[str, str]) -> Starlette:
    """``senders`` maps a sender id (the path segment) to its configured FHIR STU3 base."""

    async def notify(request: Request) -> Response:
        base = senders.get(request.path_params["sender"])
        if base is None:
            return _outcome(404, "not-found", f"unknown sender {request.path_params['sender']!r}")
        try:
            task = json.loads(await request.body())
        except ValueError:
            return _outcome(400, "structure", "the body is not JSON")
        if not isinstance(task, dict) or task.get("resourceType") != "Task" or not task.get("id"):
            return _outcome(400, "structure", "expected a Task with an id", "Task")
        try:
            transfer = await receiver.receive(base, task)
        except TransferError as exc:
            return _outcome(422, "processing", str(exc), exc.offending)
        except (CounterpartUnavailable, HubUnavailable) as exc:
            return _outcome(503, "transient", str(exc))
        except HubError as exc:
            return _outcome(422, "processing", f"the hub refused the transfer: {exc}")
        return JSONResponse({"resourceType": "Task", "id": transfer.hub_task_id}, 201, media_type=FHIR_JSON)

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/senders/{sender}/Task", notify, methods=["POST"]), Route("/healthz", health)])
