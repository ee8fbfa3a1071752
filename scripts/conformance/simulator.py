"""The test simulator: the eOverdracht STU3 system on the other side of the SUT, as a real HTTP server.

It serves the qualification resources (read, ``Composition/{id}/$document`` unless turned off for the
"NoDocument" scripts), stores Task updates, receives notifications (``POST /notify[/{id}]``), answers
in FHIR JSON or XML as asked, and logs every request the SUT makes (the runner's own requests carry
``X-Conformance-Runner`` and are not logged), so that awaited operations can be found and asserted.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scripts.conformance.testscript import Exchange, Json, stu3_json, stu3_xml

RUNNER_HEADER = "x-conformance-runner"


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        ref = node.get("reference")
        found = [ref] if isinstance(ref, str) and ref.count("/") == 1 and not ref.startswith("#") else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


class Simulator:
    """The simulator's store and log; :meth:`start` serves it on a loopback port in a thread."""

    def __init__(self, resources: list[Json], port: int) -> None:
        self.store: dict[str, Json] = {f"{r['resourceType']}/{r['id']}": r for r in resources}
        self.log: list[Exchange] = []
        self.document = True
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def put(self, resource: Json) -> None:
        self.store[f"{resource['resourceType']}/{resource['id']}"] = resource

    def document_bundle(self, ref: str) -> Json:
        entries: dict[str, Json] = {ref: self.store[ref]}
        queue = _references(self.store[ref])
        while queue:
            nxt = queue.pop(0)
            if nxt in entries or nxt not in self.store:
                continue
            entries[nxt] = self.store[nxt]
            queue += _references(self.store[nxt])
        return {
            "resourceType": "Bundle",
            "id": f"doc-{ref.split('/')[1]}"[:64],
            "type": "document",
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"{self.base}/fhir/Bundle/doc-{ref.split('/')[1]}"},
            "entry": [{"fullUrl": f"{self.base}/fhir/{r}", "resource": res} for r, res in entries.items()],
        }

    def app(self) -> Starlette:
        def answer(request: Request, status: int, body: Json | None, exchange: Exchange | None) -> Response:
            xml = "xml" in request.headers.get("accept", "") or "xml" in request.query_params.get("_format", "")
            if exchange is not None:
                exchange.status = status
                exchange.response_format = None if body is None else "xml" if xml else "json"
                exchange.response_body = body
            if body is None:
                return Response(status_code=status)
            if xml:
                return Response(stu3_xml(body), status, media_type="application/fhir+xml")
            return JSONResponse(body, status, media_type="application/fhir+json")

        async def record(request: Request) -> tuple[Exchange | None, Json | None]:
            raw = await request.body()
            kind = request.headers.get("content-type", "")
            body: Json | None = None
            if raw.strip():
                body = stu3_json(raw) if "xml" in kind else json.loads(raw)
            if request.headers.get(RUNNER_HEADER):
                return None, body
            exchange = Exchange(
                request.method,
                request.url.path,
                ("xml" if "xml" in kind else "json") if body else None,
                body,
                headers=dict(request.headers),
            )
            self.log.append(exchange)
            return exchange, body

        def missing(ref: str) -> Json:
            return {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-found", "diagnostics": f"{ref} not found"}],
            }

        async def read(request: Request) -> Response:
            exchange, _ = await record(request)
            ref = f"{request.path_params['type']}/{request.path_params['id']}"
            found = self.store.get(ref)
            return answer(request, 200 if found else 404, found or missing(ref), exchange)

        async def document(request: Request) -> Response:
            exchange, _ = await record(request)
            ref = f"Composition/{request.path_params['id']}"
            if not self.document:
                return answer(request, 404, missing(f"{ref}/$document"), exchange)
            if ref not in self.store:
                return answer(request, 404, missing(ref), exchange)
            return answer(request, 200, self.document_bundle(ref), exchange)

        async def update(request: Request) -> Response:
            exchange, body = await record(request)
            if not body or body.get("id") != request.path_params["id"]:
                return answer(request, 400, missing("a resource with the URL's id"), exchange)
            ref = f"{request.path_params['type']}/{request.path_params['id']}"
            status = 200 if ref in self.store else 201
            self.store[ref] = body
            return answer(request, status, body, exchange)

        async def notify(request: Request) -> Response:
            exchange, body = await record(request)
            if body and body.get("resourceType") == "Task" and body.get("id"):
                self.store[f"Task/{body['id']}"] = body
            return answer(request, 202, None, exchange)

        return Starlette(
            routes=[
                Route("/notify", notify, methods=["POST"]),
                Route("/notify/{id}", notify, methods=["POST"]),
                Route("/fhir/Composition/{id}/$document", document),
                Route("/fhir/{type}/{id}", update, methods=["PUT"]),
                Route("/fhir/{type}/{id}", read),
                Route("/fhir/metadata", lambda _r: JSONResponse({"resourceType": "CapabilityStatement"})),
            ]
        )

    def start(self) -> None:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
