"""A fake eOverdracht 4.0 (FHIR STU3) system as its own process (``python -m tests.adapters.eoverdracht_counterpart``).

It plays the other nursing organisation in both roles, and the organisation's own nursing system (its
nursing care plan, ``GET /admin/versions/{type}/{id}`` listing every update it received):

- as the sender it serves the transfer's resources (Task, advance notice and handoff Compositions, the
  resources they reference) by id and by ``_id`` search, and accepts the receiver's Task updates
  (``PUT /fhir/Task/{id}``; every accepted state is kept in ``GET /admin/task-history/{id}``);
- as the receiver it accepts a notification Task (``POST /fhir/Task``) and records it.

``POST /admin/notify`` makes it POST a Task to a receiver's endpoint, as a sending system does.
``--fail-first N`` answers the first N FHIR requests with 503 (a counterpart that is briefly down);
``POST /admin/fail {"count": N, "after": K}`` does so for the N requests after the next K.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FHIR_JSON = "application/fhir+json"


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) and "/" in node["reference"] else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def build_app(resources: list[dict[str, Any]], fail_first: int = 0) -> Starlette:
    store: dict[tuple[str, str], dict[str, Any]] = {(r["resourceType"], r["id"]): r for r in resources}
    history: dict[str, list[str]] = {}
    received: list[dict[str, Any]] = []
    versions: dict[str, list[dict[str, Any]]] = {}
    failures = {"left": fail_first, "skip": 0}

    def outcome(status: int, text: str) -> JSONResponse:
        body = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
        }
        return JSONResponse(body, status_code=status, media_type=FHIR_JSON)

    def down() -> bool:
        if failures["skip"] > 0:
            failures["skip"] -= 1
            return False
        if failures["left"] > 0:
            failures["left"] -= 1
            return True
        return False

    async def read(request: Request) -> Response:
        if down():
            return outcome(503, "temporarily unavailable")
        key = (request.path_params["type"], request.path_params["id"])
        if key not in store:
            return outcome(404, f"{key[0]}/{key[1]} not found")
        return JSONResponse(store[key], media_type=FHIR_JSON)

    async def search(request: Request) -> Response:
        if down():
            return outcome(503, "temporarily unavailable")
        res_type = request.path_params["type"]
        ids = set(request.query_params.get("_id", "").split(",")) - {""}
        hits = [r for (t, i), r in store.items() if t == res_type and (not ids or i in ids)]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(hits),
            "entry": [{"fullUrl": f"{res_type}/{r['id']}", "resource": r} for r in hits],
        }
        return JSONResponse(bundle, media_type=FHIR_JSON)

    async def update(request: Request) -> Response:
        """A Task update by the receiver, or any resource update (the nursing system's own users, or
        the adapter sending a care plan activity's status back); every version is kept."""
        if down():
            return outcome(503, "temporarily unavailable")
        resource = json.loads(await request.body())
        res_type, res_id = request.path_params["type"], request.path_params["id"]
        if resource.get("resourceType") != res_type or resource.get("id") != res_id:
            return outcome(400, "the resource's type and id in the body must match the URL")
        from fhir.resources.STU3 import get_fhir_model_class

        try:
            get_fhir_model_class(res_type).model_validate(resource)
        except ValueError as exc:
            return outcome(422, f"invalid STU3 {res_type}: {exc}")
        store[(res_type, res_id)] = resource
        if res_type == "Task":
            history.setdefault(res_id, []).append(resource["status"])
        versions.setdefault(f"{res_type}/{res_id}", []).append(resource)
        return JSONResponse(resource, media_type=FHIR_JSON)

    async def receive_task(request: Request) -> Response:
        task = json.loads(await request.body())
        received.append(task)
        store[("Task", task["id"])] = task
        history.setdefault(task["id"], []).append(task["status"])
        return JSONResponse(task, status_code=201, media_type=FHIR_JSON)

    async def resource_versions(request: Request) -> Response:
        return JSONResponse(versions.get(f"{request.path_params['type']}/{request.path_params['id']}", []))

    async def task_history(request: Request) -> Response:
        return JSONResponse(history.get(request.path_params["id"], []))

    async def notify(request: Request) -> Response:
        body = await request.json()
        task = store[("Task", body["task"])]
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(
                body["to"], json=task, headers={"Content-Type": FHIR_JSON, "X-Sender-Base": body["sender_base"]}
            )
        return JSONResponse({"status": r.status_code, "body": r.json() if r.content else None})

    async def pull(request: Request) -> Response:
        """As the receiver: pull what a received Task references from the sender (bearer token), checked."""
        from fhir.resources.STU3 import get_fhir_model_class

        body = await request.json()
        headers = {"Authorization": f"Bearer {body['token']}", "Accept": FHIR_JSON}
        task = store[("Task", body["task"])]
        pulled: dict[str, Any] = {}
        queue = [ref for ref in _references(task)]
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:
            while queue:
                ref = queue.pop(0)
                if ref in pulled:
                    continue
                r = await http.get(f"{body['base']}/{ref}")
                if r.status_code != 200:
                    return JSONResponse({"error": f"{ref}: {r.status_code} {r.text[:300]}"}, status_code=502)
                resource = r.json()
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
                pulled[ref] = resource
                queue += [x for x in _references(resource) if x not in pulled]
        return JSONResponse(pulled)

    async def decide(request: Request) -> Response:
        """As the receiver: set the Task's state at the sender (accepted, rejected, completed, ...)."""
        body = await request.json()
        task = {**store[("Task", body["task"])], "status": body["status"]}
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.put(
                f"{body['base']}/Task/{body['task']}",
                json=task,
                headers={"Authorization": f"Bearer {body['token']}", "Content-Type": FHIR_JSON},
            )
        if r.status_code == 200:
            store[("Task", body["task"])] = r.json()
            history.setdefault(body["task"], []).append(body["status"])
        return JSONResponse({"status": r.status_code, "body": r.json()})

    async def fail(request: Request) -> Response:
        body = await request.json()
        failures["left"], failures["skip"] = int(body["count"]), int(body.get("after", 0))
        return JSONResponse(failures)

    async def metadata(_request: Request) -> Response:
        return JSONResponse({"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2", "status": "active"})

    return Starlette(
        routes=[
            Route("/fhir/metadata", metadata),
            Route("/fhir/Task", receive_task, methods=["POST"]),
            Route("/fhir/{type}/{id}", update, methods=["PUT"]),
            Route("/fhir/{type}/{id}", read),
            Route("/fhir/{type}", search),
            Route("/admin/task-history/{id}", task_history),
            Route("/admin/versions/{type}/{id}", resource_versions),
            Route("/admin/notify", notify, methods=["POST"]),
            Route("/admin/pull", pull, methods=["POST"]),
            Route("/admin/decide", decide, methods=["POST"]),
            Route("/admin/fail", fail, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True, help="JSON list of STU3 resources to serve")
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    resources = json.loads(args.data.read_text("utf-8"))
    uvicorn.run(build_app(resources, args.fail_first), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
