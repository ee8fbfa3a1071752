"""The adapter's small HTTP endpoint where eOverdracht senders notify: ``POST /senders/{id}/Task``.

The notification Task is handed to :class:`~adapters.wijkverpleging.receiver.Receiver`; the answer says
what happened: 201 with the hub's Task id, 422 with an OperationOutcome naming the offending resource
when the transfer was refused (parked), 503 when the hub or the sender could not be reached (the sender
notifies again), 404 for a sender that is not configured.

For the sender role it also serves ``/stu3/{receiver}/{Type}/{id}`` (what was announced to that receiver,
as STU3) and accepts ``PUT /stu3/{receiver}/Task/{id}`` (the receiver's state changes), each with the
receiver's own bearer token.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.common.errors import HubError, HubUnavailable
from adapters.wijkverpleging.convert import InvalidResource
from adapters.wijkverpleging.receiver import Receiver
from adapters.wijkverpleging.sender import Sender
from adapters.wijkverpleging.sender_api import CounterpartUnavailable, TransferError

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"


def _wants_xml(request: Request) -> bool:
    fmt = request.query_params.get("_format", "")
    return "xml" in fmt or ("xml" in request.headers.get("accept", "") and "json" not in fmt)


def _resource(request: Request, resource: dict[str, Any], status: int = 200) -> Response:
    """A resource in the format the caller asked for (FHIR JSON, or XML through the STU3 models)."""
    if _wants_xml(request):
        from fhir.resources.STU3 import get_fhir_model_class

        model = get_fhir_model_class(str(resource["resourceType"])).model_validate(resource)
        return Response(model.model_dump_xml(), status, media_type=FHIR_XML)
    return JSONResponse(resource, status, media_type=FHIR_JSON)


def _body(raw: bytes, content_type: str) -> Any:
    """A request body in FHIR JSON or XML (as JSON); ValueError when it is neither."""
    if "xml" in content_type:
        from fhir.resources.STU3 import get_fhir_model_class
        from lxml import etree

        root = etree.fromstring(raw)
        model = get_fhir_model_class(etree.QName(root).localname).model_validate_xml(raw)
        return json.loads(model.model_dump_json(exclude_none=True))
    return json.loads(raw)


def _outcome(status: int, code: str, text: str, where: str | None = None) -> JSONResponse:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": text}
    if where:
        issue["expression"] = [where]
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [issue]}, status, media_type=FHIR_JSON)


def build_app(
    receiver: Receiver,
    senders: dict[str, str],
    sender: Sender | None = None,
    receivers: dict[str, str] | None = None,
) -> Starlette:
    """``senders`` maps a sender id (the path segment) to its configured FHIR STU3 base; ``receivers`` maps
    a receiver id to the bearer token it pulls with from the STU3 facade ``/stu3/{receiver}/...``."""
    tokens = receivers or {}

    def authorised(request: Request) -> str | None:
        name = request.path_params["receiver"]
        expected = tokens.get(name)
        given = request.headers.get("authorization", "")
        if sender is None or expected is None or not secrets.compare_digest(given, f"Bearer {expected}"):
            return None
        return str(name)

    async def facade_read(request: Request) -> Response:
        name = authorised(request)
        if name is None or sender is None:
            return _outcome(401, "login", "unknown receiver or wrong token")
        res_type, res_id = request.path_params["type"], request.path_params["id"]
        try:
            resource = await sender.read(name, res_type, res_id)
        except HubError as exc:
            return _outcome(503 if isinstance(exc, HubUnavailable) else 404, "not-found", str(exc))
        if resource is None:
            return _outcome(404, "not-found", f"{res_type}/{res_id} was not sent to {name}")
        return _resource(request, resource)

    async def facade_document(request: Request) -> Response:
        name = authorised(request)
        if name is None or sender is None:
            return _outcome(401, "login", "unknown receiver or wrong token")
        res_id = request.path_params["id"]
        base = str(request.url_for("facade_read", receiver=name, type="Composition", id=res_id)).rsplit("/", 2)[0]
        try:
            bundle = await sender.document(name, res_id, base)
        except HubError as exc:
            return _outcome(503 if isinstance(exc, HubUnavailable) else 404, "not-found", str(exc))
        except InvalidResource as exc:
            return _outcome(500, "exception", f"the document does not convert to STU3: {exc}")
        if bundle is None:
            return _outcome(404, "not-found", f"Composition/{res_id} was not sent to {name}")
        return _resource(request, bundle)

    async def facade_update(request: Request) -> Response:
        name = authorised(request)
        if name is None or sender is None:
            return _outcome(401, "login", "unknown receiver or wrong token")
        try:
            task = _body(await request.body(), request.headers.get("content-type", ""))
        except ValueError:
            return _outcome(400, "structure", "the body is not FHIR JSON or XML")
        if not isinstance(task, dict) or task.get("id") != request.path_params["id"]:
            return _outcome(400, "structure", "the Task id in the body must match the URL", "Task.id")
        try:
            updated = await sender.update_task(name, task)
        except (TransferError, InvalidResource) as exc:
            return _outcome(422, "processing", str(exc), "Task.status")
        except HubError as exc:
            return _outcome(exc.status if 400 <= exc.status < 500 else 503, "processing", str(exc))
        if updated is None:
            return _outcome(404, "not-found", f"Task/{request.path_params['id']} was not sent to {name}")
        return _resource(request, updated)

    async def notify(request: Request) -> Response:
        """A sender's notification: the Task in the body (``POST .../Task``), or only its id in the URL
        (``POST .../Task/{id}``, as eOverdracht 4.0 notifies), then read from the sender."""
        base = senders.get(request.path_params["sender"])
        if base is None:
            return _outcome(404, "not-found", f"unknown sender {request.path_params['sender']!r}")
        named = request.path_params.get("id")
        raw = await request.body()
        try:
            task = _body(raw, request.headers.get("content-type", "")) if raw.strip() else None
        except ValueError:
            return _outcome(400, "structure", "the body is not FHIR JSON or XML")
        try:
            if task is None and named:
                task = await receiver.sender(base).read(f"Task/{named}")
            if not isinstance(task, dict) or task.get("resourceType") != "Task" or not task.get("id"):
                return _outcome(400, "structure", "expected a Task with an id", "Task")
            if named and task["id"] != named:
                return _outcome(400, "structure", "the Task id in the body must match the URL", "Task.id")
            transfer = await receiver.receive(base, task)
        except TransferError as exc:
            return _outcome(422, "processing", str(exc), exc.offending)
        except (CounterpartUnavailable, HubUnavailable) as exc:
            return _outcome(503, "transient", str(exc))
        except HubError as exc:
            return _outcome(422, "processing", f"the hub refused the transfer: {exc}")
        if named:  # eOverdracht 4.0: the notification is accepted; what it started is in the hub
            return Response(status_code=202)
        return JSONResponse({"resourceType": "Task", "id": transfer.hub_task_id}, 201, media_type=FHIR_JSON)

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/senders/{sender}/Task", notify, methods=["POST"]),
            Route("/senders/{sender}/Task/{id}", notify, methods=["POST"]),
            Route("/stu3/{receiver}/Task/{id}", facade_update, methods=["PUT"]),
            Route("/stu3/{receiver}/Composition/{id}/$document", facade_document),
            Route("/stu3/{receiver}/{type}/{id}", facade_read, name="facade_read"),
            Route("/healthz", health),
        ]
    )
