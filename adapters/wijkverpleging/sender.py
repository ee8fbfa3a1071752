"""The eOverdracht sender role: a handover started in the hub (R4 Task) served to an STU3 receiver.

:meth:`Sender.announce` reads the hub Task and everything it references (the advance notice and nursing
handoff Compositions and their entries), records that closure as what this receiver may pull, and POSTs
the STU3 notification Task to the receiver. The receiver then pulls through the adapter's STU3 facade
(:meth:`Sender.read`, converted on the fly from the hub with :func:`~adapters.wijkverpleging.convert.to_stu3`)
and reports its decisions by updating the Task (:meth:`Sender.update_task`), which the adapter applies to
the hub Task's state elements only. Resource ids are the hub's; references stay relative. Every resource
served claims its STU3 profiles in ``meta.profile``: those it came with from an STU3 system, else the
nl-core/eOverdracht ones it passes (:mod:`adapters.wijkverpleging.profiles`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx

from adapters.common.client import HubClient
from adapters.wijkverpleging.convert import RECEIVER_STATES, InvalidResource, Resource, check_stu3, to_r4, to_stu3
from adapters.wijkverpleging.profiles import claim_profiles
from adapters.wijkverpleging.sender_api import CounterpartUnavailable, TransferError, references
from adapters.wijkverpleging.state import State

log = logging.getLogger("adapters.wijkverpleging")
SOURCE = "urn:ietf:rfc:3986"


def _for_stu3(r4: Resource) -> Resource:
    """The STU3 form of a hub resource: converted, checked, server-owned meta dropped; a hub record that
    claims no STU3 profile claims the nl-core/eOverdracht ones it passes (:func:`claim_profiles`)."""
    stu3 = to_stu3(r4)
    check_stu3(stu3)
    return claim_profiles(stu3)


class Sender:
    def __init__(self, hub: HubClient, http: httpx.AsyncClient, state: State) -> None:
        self.hub = hub
        self.http = http
        self.state = state

    async def closure(self, task_id: str) -> dict[str, Resource]:
        found: dict[str, Resource] = {}
        queue = [f"Task/{task_id}"]
        while queue:
            batch, queue = queue, []
            resources = await asyncio.gather(*(self.hub.read(*ref.split("/")) for ref in batch))
            for ref, resource in zip(batch, resources, strict=True):
                found[ref] = resource
            for resource in resources:
                for ref in references(resource):
                    if ref not in found and ref not in queue:
                        queue.append(ref)
        return found

    async def announce(self, receiver: str, notify_url: str, task_id: str, attempts: int = 5) -> Resource:
        """Send the hub Task ``task_id`` as an eOverdracht STU3 notification to ``notify_url``."""
        resources = await self.closure(task_id)
        try:
            stu3 = {ref: _for_stu3(r) for ref, r in resources.items()}
        except InvalidResource as exc:
            raise TransferError(f"Task/{task_id}", str(exc)) from exc
        self.state.announce(receiver, list(stu3))
        task = stu3[f"Task/{task_id}"]
        for attempt in range(1, attempts + 1):
            try:
                response = await self.http.post(
                    notify_url, json=task, headers={"Content-Type": "application/fhir+json"}
                )
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise CounterpartUnavailable(f"POST {notify_url}: {exc!r}") from exc
            else:
                if response.status_code < 500:
                    if response.status_code >= 400:
                        raise TransferError(f"Task/{task_id}", f"receiver refused: {response.text[:300]}")
                    return task
                if attempt == attempts:
                    raise CounterpartUnavailable(f"POST {notify_url}: {response.status_code}")
            await asyncio.sleep(0.2 * attempt)
        return task

    async def read(self, receiver: str, res_type: str, res_id: str) -> Resource | None:
        """An announced resource in STU3, or None when this receiver was not sent it."""
        if not self.state.announced(receiver, f"{res_type}/{res_id}"):
            return None
        return _for_stu3(await self.hub.read(res_type, res_id))

    async def document(self, receiver: str, composition_id: str, base: str) -> Resource | None:
        """``Composition/{id}/$document``: a document Bundle of an announced Composition and every
        announced resource it references (transitively), with ``base`` (the facade's URL for this
        receiver) in the entries' ``fullUrl``; None when the Composition was not sent to this receiver."""
        first = await self.read(receiver, "Composition", composition_id)
        if first is None:
            return None
        entries: dict[str, Resource] = {f"Composition/{composition_id}": first}
        queue = references(first)
        while queue:
            ref = queue.pop(0)
            if ref in entries or "/" not in ref:
                continue
            res_type, res_id = ref.split("/", 1)
            resource = await self.read(receiver, res_type, res_id)
            if resource is None:
                continue  # not part of what was announced to this receiver
            entries[ref] = resource
            queue += [r for r in references(resource) if r not in entries]
        bundle: Resource = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "identifier": {"system": SOURCE, "value": f"urn:uuid:{uuid.uuid4()}"},
            "type": "document",
            "entry": [{"fullUrl": f"{base.rstrip('/')}/{ref}", "resource": r} for ref, r in entries.items()],
        }
        check_stu3(bundle)
        return bundle

    async def update_task(self, receiver: str, stu3_task: Resource) -> Resource | None:
        """Apply the receiver's state change to the hub Task; the receiver owns only the state elements."""
        task_id = str(stu3_task.get("id"))
        if not self.state.announced(receiver, f"Task/{task_id}"):
            return None
        check_stu3(stu3_task)
        theirs = to_r4(stu3_task)
        if theirs["status"] not in RECEIVER_STATES:
            raise TransferError(f"Task/{task_id}", f"a receiver cannot set status {theirs['status']!r}")
        ours = await self.hub.read("Task", task_id)
        updated: dict[str, Any] = {**ours, "status": theirs["status"]}
        for key in ("statusReason", "businessStatus", "output"):
            if key in theirs:
                updated[key] = theirs[key]
        version = (ours.get("meta") or {}).get("versionId")
        return _for_stu3(await self.hub.update(updated, version=version))
