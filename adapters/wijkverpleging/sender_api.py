"""The other side's eOverdracht STU3 server: reads, Task updates, and pulling a whole transfer.

A counterpart that is down (connection errors, 5xx, timeouts) is retried with backoff and then reported as
:class:`CounterpartUnavailable`; what it sends is checked against the STU3 models, and a transfer whose
resources reference something the sender cannot serve is refused as :class:`TransferError`, naming the
resource and the reference, before anything is written to the hub.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from adapters.common.client import RetryPolicy
from adapters.common.errors import AdapterError
from adapters.wijkverpleging.convert import InvalidResource, Resource, check_stu3

FHIR_JSON = "application/fhir+json"
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
#: A transfer larger than this is refused (a guard against a sender that references without end).
MAX_RESOURCES = 1000


class CounterpartUnavailable(AdapterError):
    """The STU3 counterpart could not be reached or kept failing after the retries."""


class TransferError(AdapterError):
    """A transfer refused as a whole: an invalid resource or a reference the sender cannot serve."""

    def __init__(self, offending: str, message: str) -> None:
        super().__init__(f"{offending}: {message}")
        self.offending = offending


def references(node: Any) -> list[str]:
    """Every relative literal reference (``Type/id``) anywhere in ``node``."""
    found: list[str] = []
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and _RELATIVE.match(ref):
            found.append(ref)
        for value in node.values():
            found += references(value)
    elif isinstance(node, list):
        for item in node:
            found += references(item)
    return found


def rewrite_references(node: Any, targets: dict[str, str]) -> None:
    """Point every ``reference`` found in ``targets`` at its new value, in place."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in targets:
            node["reference"] = targets[ref]
        for value in node.values():
            rewrite_references(value, targets)
    elif isinstance(node, list):
        for item in node:
            rewrite_references(item, targets)


class Stu3Server:
    """One counterpart's FHIR STU3 base URL, over httpx with retries."""

    def __init__(self, base: str, http: httpx.AsyncClient, retry: RetryPolicy | None = None) -> None:
        self.base = base.rstrip("/")
        self.http = http
        self.retry = retry or RetryPolicy()

    async def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                headers = {"Accept": FHIR_JSON}
                if json is not None:
                    headers["Content-Type"] = FHIR_JSON
                response = await self.http.request(method, f"{self.base}/{path}", json=json, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.retry.attempts:
                    raise CounterpartUnavailable(f"{method} {self.base}/{path}: {exc!r}") from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if response.status_code >= 500:
                if attempt >= self.retry.attempts:
                    raise CounterpartUnavailable(f"{method} {self.base}/{path}: {response.status_code}")
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            return response

    async def read(self, reference: str) -> Resource:
        response = await self._request("GET", reference)
        if response.status_code == 404:
            raise TransferError(reference, "not served by the sender")
        if response.status_code >= 400:
            raise TransferError(reference, f"sender answered {response.status_code}")
        resource: Resource = response.json()
        try:
            check_stu3(resource)
        except InvalidResource as exc:
            raise TransferError(reference, str(exc)) from exc
        if f"{resource.get('resourceType')}/{resource.get('id')}" != reference:
            raise TransferError(reference, "the sender answered with another resource")
        return resource

    async def update(self, resource: Resource) -> Resource:
        ref = f"{resource['resourceType']}/{resource['id']}"
        response = await self._request("PUT", ref, json=resource)
        if response.status_code >= 400:
            raise TransferError(ref, f"the counterpart refused the update: {response.text[:300]}")
        return dict(response.json())

    async def update_task(self, task: Resource) -> Resource:
        return await self.update(task)

    async def document(self, reference: str) -> dict[str, Resource] | None:
        """``Composition/{id}/$document`` (how eOverdracht 4.0 has the handoff retrieved): the
        Composition and the resources of its document Bundle, each checked; None when the sender
        does not offer the operation (then the adapter reads resource by resource)."""
        response = await self._request("GET", f"{reference}/$document")
        if response.status_code in (400, 404, 405, 501):
            return None
        if response.status_code >= 400:
            raise TransferError(reference, f"sender answered {response.status_code} to $document")
        bundle = response.json()
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "document":
            raise TransferError(reference, "the sender's $document answer is not a document Bundle")
        out: dict[str, Resource] = {}
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not resource.get("id"):
                continue
            ref = f"{resource.get('resourceType')}/{resource['id']}"
            try:
                check_stu3(resource)
            except InvalidResource as exc:
                raise TransferError(ref, str(exc)) from exc
            out[ref] = resource
        if reference not in out:
            raise TransferError(reference, "the sender's document Bundle does not hold the Composition")
        return out

    async def pull(self, roots: list[str]) -> dict[str, Resource]:
        """``roots`` and everything they reference, transitively: ``{"Type/id": resource}``. A
        Composition comes with its document (``$document``) when the sender offers it."""
        found: dict[str, Resource] = {}
        for ref in dict.fromkeys(r for r in roots if r.startswith("Composition/")):
            document = await self.document(ref)
            if document is not None:
                found.update({k: v for k, v in document.items() if k not in found})
        queue = [ref for ref in dict.fromkeys(roots) if ref not in found]
        for resource in list(found.values()):
            queue += [ref for ref in references(resource) if ref not in found and ref not in queue]
        while queue:
            if len(found) + len(queue) > MAX_RESOURCES:
                raise TransferError(roots[0], f"more than {MAX_RESOURCES} resources referenced")
            batch, queue = queue, []
            resources = await asyncio.gather(*(self.read(ref) for ref in batch))
            for ref, resource in zip(batch, resources, strict=True):
                found[ref] = resource
            for resource in resources:
                for ref in references(resource):
                    if ref not in found and ref not in queue:
                        queue.append(ref)
        return found
