"""The eOverdracht receiver role: an STU3 sender notifies, the adapter pulls, converts, stores, mirrors.

1. :meth:`Receiver.receive` gets the sender's notification Task (pushed to the adapter's endpoint or read
   by the adapter), pulls from the sender what the Task references (the advance notice and, later, the
   nursing handoff Compositions and everything their sections reference), checks each resource against
   the STU3 models, converts to R4 and writes it all to the hub as ONE transaction of conditional updates
   keyed by the sender's resource URL (``urn:ietf:rfc:3986``): repeating a notification is harmless and a
   refused transfer leaves nothing behind. The client is referenced by BSN (the hub's Patient is the
   network's record, not the sender's copy); the hub Task's owner is this adapter's organisation.
2. :meth:`Receiver.mirror` sends every Task state the receiving organisation set in the hub (accepted,
   rejected, on-hold, in-progress, completed) back to the sender's Task; a sender that is down keeps
   the change pending until the next round.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.common.client import HubClient, RetryPolicy
from adapters.wijkverpleging.convert import (
    RECEIVER_STATES,
    InvalidResource,
    Resource,
    check_r4,
    check_stu3,
    to_r4,
    to_stu3,
)
from adapters.wijkverpleging.sender_api import CounterpartUnavailable, Stu3Server, TransferError, references
from adapters.wijkverpleging.state import State, Transfer

log = logging.getLogger("adapters.wijkverpleging")

SOURCE = "urn:ietf:rfc:3986"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
URA = "http://fhir.nl/fhir/NamingSystem/ura"


class Receiver:
    """Receive eOverdracht transfers for the organisation with URA ``own_ura``."""

    def __init__(
        self,
        hub: HubClient,
        http: httpx.AsyncClient,
        state: State,
        own_ura: str,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.hub = hub
        self.http = http
        self.state = state
        self.own_ura = own_ura
        self.retry = retry

    def sender(self, base: str) -> Stu3Server:
        return Stu3Server(base, self.http, self.retry)

    async def receive(self, sender_base: str, task: Resource) -> Transfer:
        """Store the transfer ``task`` announces (and everything it references) in the hub."""
        sender_base = sender_base.rstrip("/")
        task_id = str(task.get("id", ""))
        try:
            try:
                check_stu3(task)
            except InvalidResource as exc:
                raise TransferError(f"Task/{task_id}", str(exc)) from exc
            pulled = await self.sender(sender_base).pull(references(task))
            resources = {f"Task/{task_id}": task, **pulled}
            existing = self.state.get(sender_base, task_id)
            hub_status = await self._hub_status(existing)
            entries = self.transaction(sender_base, resources, hub_status)
        except TransferError as exc:
            log.warning("eOverdracht transfer %s/Task/%s parked: %s", sender_base, task_id, exc)
            self.state.park(sender_base, task_id, exc.offending, str(exc))
            raise
        response = await self.hub.transaction(entries)
        hub_task_id = _location_id(response, entries, "Task")
        transfer = Transfer(sender_base, task_id, hub_task_id, existing.mirrored if existing else str(task["status"]))
        self.state.save(transfer)
        log.info("eOverdracht transfer %s/Task/%s stored as Task/%s", sender_base, task_id, hub_task_id)
        return transfer

    async def _hub_status(self, existing: Transfer | None) -> str | None:
        if existing is None:
            return None
        return str((await self.hub.read("Task", existing.hub_task_id))["status"])

    def transaction(self, sender_base: str, resources: dict[str, Resource], hub_status: str | None) -> list[Any]:
        """The hub transaction for one transfer: conditional updates keyed by the sender's URLs."""
        full_urls = {ref: f"urn:uuid:{uuid.uuid4()}" for ref in resources if not ref.startswith("Patient/")}
        patients: dict[str, str] = {}
        for ref, resource in resources.items():
            if ref.startswith("Patient/"):
                bsn = next((i.get("value") for i in resource.get("identifier") or [] if i.get("system") == BSN), None)
                if not bsn:
                    raise TransferError(ref, "the client has no BSN to find them in the network by")
                patients[ref] = f"Patient?identifier={BSN}|{bsn}"
        entries: list[dict[str, Any]] = []
        for ref, stu3 in resources.items():
            if ref in patients:
                continue
            r4 = to_r4(stu3)
            r4.pop("id", None)
            _rewrite(r4, {**full_urls, **patients})
            source_url = f"{sender_base}/{ref}"
            if r4["resourceType"] == "Composition":
                r4.setdefault("identifier", {"system": SOURCE, "value": source_url})
                key = r4["identifier"]
            else:
                key = {"system": SOURCE, "value": source_url}
                r4["identifier"] = [*(r4.get("identifier") or []), key]
            if r4["resourceType"] == "Task":
                r4["owner"] = {"reference": f"Organization?identifier={URA}|{self.own_ura}"}
                if hub_status is not None and stu3["status"] != "cancelled":
                    r4["status"] = hub_status  # the receiver owns every state but the sender's cancel
            try:
                check_r4(r4)
            except InvalidResource as exc:
                raise TransferError(ref, str(exc)) from exc
            entries.append(
                {
                    "fullUrl": full_urls[ref],
                    "resource": r4,
                    "request": {
                        "method": "PUT",
                        "url": f"{r4['resourceType']}?identifier={key['system']}|{key['value']}",
                    },
                }
            )
        entries.append(self._provenance(sender_base, [e["fullUrl"] for e in entries]))
        return entries

    def _provenance(self, sender_base: str, targets: list[str]) -> dict[str, Any]:
        return {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "request": {"method": "POST", "url": "Provenance"},
            "resource": {
                "resourceType": "Provenance",
                "target": [{"reference": t} for t in targets],
                "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
                "agent": [{"who": {"identifier": {"system": URA, "value": self.own_ura}}}],
                "entity": [{"role": "source", "what": {"identifier": {"system": SOURCE, "value": sender_base}}}],
            },
        }

    async def mirror(self) -> list[tuple[str, str]]:
        """Send every Task state changed in the hub back to its sender; ``(task id, state)`` delivered."""
        delivered: list[tuple[str, str]] = []
        for transfer in self.state.all():
            hub_task = await self.hub.read("Task", transfer.hub_task_id)
            status = str(hub_task["status"])
            if status == transfer.mirrored or status not in RECEIVER_STATES:
                continue
            sender = self.sender(transfer.sender_base)
            try:
                theirs = await sender.read(f"Task/{transfer.task_id}")
                await sender.update_task(_with_state(theirs, to_stu3(hub_task)))
            except CounterpartUnavailable as exc:
                log.warning("Task/%s state %s not mirrored yet (retried later): %s", transfer.task_id, status, exc)
                continue
            self.state.save(Transfer(transfer.sender_base, transfer.task_id, transfer.hub_task_id, status))
            delivered.append((transfer.task_id, status))
        return delivered


def _with_state(theirs: Resource, ours: Resource) -> Resource:
    """The sender's Task with the state elements the receiver owns taken from the hub's Task."""
    out = {**theirs, "status": ours["status"]}
    for key in ("statusReason", "businessStatus", "output"):
        if key in ours:
            out[key] = ours[key]
        else:
            out.pop(key, None)
    return out


def _rewrite(node: Any, targets: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in targets:
            node["reference"] = targets[ref]
        for value in node.values():
            _rewrite(value, targets)
    elif isinstance(node, list):
        for item in node:
            _rewrite(item, targets)


def _location_id(response: dict[str, Any], entries: list[dict[str, Any]], res_type: str) -> str:
    for sent, got in zip(entries, response.get("entry") or [], strict=False):
        if sent["resource"]["resourceType"] == res_type:
            location = str((got.get("response") or {}).get("location", ""))
            parts = location.split("/")
            if res_type in parts[:-1]:
                return parts[parts.index(res_type) + 1]
    raise TransferError(res_type, f"the hub's transaction response names no {res_type}")
