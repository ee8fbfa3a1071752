"""The eOverdracht receiver role: an STU3 sender notifies, the adapter pulls, converts, stores, mirrors.

1. :meth:`Receiver.receive` gets the sender's notification Task (pushed to the adapter's endpoint or read
   by the adapter), pulls from the sender what the Task references (the advance notice and, later, the
   nursing handoff Compositions and everything their sections reference), checks each resource against
   the STU3 models, converts to R4 and writes it all to the hub as ONE transaction of conditional updates
   keyed by the sender's resource URL (``urn:ietf:rfc:3986``): repeating a notification is harmless and a
   refused transfer leaves nothing behind. The client is referenced by BSN (the hub's Patient is the
   network's record, not the sender's copy); the hub Task's owner is this adapter's organisation, and it
   is an *imported* overdracht (``meta.tag`` overdracht-exchange ``imported``): its requester is the
   sending organisation by identifier only (it is no hub party), the adapter records the sender's steps
   too, and the hub derives no access from it (docs/adapter-wijkverpleging.md).
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
from adapters.wijkverpleging.sender_api import (
    CounterpartUnavailable,
    Stu3Server,
    TransferError,
    references,
    rewrite_references,
)
from adapters.wijkverpleging.state import State, Transfer

log = logging.getLogger("adapters.wijkverpleging")

SOURCE = "urn:ietf:rfc:3986"
EXCHANGE = "https://zorgnet-hub.nl/fhir/CodeSystem/overdracht-exchange"
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
            hub_task = await self._hub_task(existing)
            entries = self.transaction(sender_base, resources, hub_task)
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

    async def _hub_task(self, existing: Transfer | None) -> Resource | None:
        if existing is None:
            return None
        return await self.hub.read("Task", existing.hub_task_id)

    def transaction(self, sender_base: str, resources: dict[str, Resource], hub_task: Resource | None) -> list[Any]:
        """The hub transaction for one transfer: conditional updates keyed by the sender's URLs.
        ``hub_task``: the hub's Task of this transfer when it was stored before."""
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
            rewrite_references(r4, {**full_urls, **patients})
            source_url = f"{sender_base}/{ref}"
            if r4["resourceType"] == "Composition":
                r4.setdefault("identifier", {"system": SOURCE, "value": source_url})
                key = r4["identifier"]
            else:
                key = {"system": SOURCE, "value": source_url}
                r4["identifier"] = [*(r4.get("identifier") or []), key]
            if r4["resourceType"] == "Task":
                self._imported(r4, stu3, sender_base, resources, hub_task)
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

    def _imported(
        self,
        task: Resource,
        stu3: Resource,
        sender_base: str,
        resources: dict[str, Resource],
        hub_task: Resource | None,
    ) -> None:
        """The sender's Task as the hub's imported overdracht of this adapter's organisation. (The
        sender's own requester, its Practitioner and PractitionerRole, stays in the cross-version
        extension ``Task.requester.agent`` that :func:`to_r4` keeps.)"""
        task["requester"] = sending_organisation(sender_base, resources, stu3.get("requester") or {})
        task["owner"] = {"reference": f"Organization?identifier={URA}|{self.own_ura}"}
        meta = task.setdefault("meta", {})
        meta["tag"] = [t for t in meta.get("tag") or [] if t.get("system") != EXCHANGE]
        meta["tag"].append({"system": EXCHANGE, "code": "imported", "display": "ontvangen van buiten het netwerk"})
        if hub_task is None:
            return
        if task["status"] != "cancelled":
            task["status"] = hub_task["status"]  # the receiver owns every state but the sender's cancel
        for key in ("authoredOn", "statusReason", "output", "restriction"):
            if key in hub_task and (key == "authoredOn" or task["status"] != "cancelled"):
                task[key] = hub_task[key]  # set by the hub, or the receiver's answers

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


def sending_organisation(sender_base: str, resources: dict[str, Resource], requester: Any) -> dict[str, Any]:
    """The organisation an STU3 Task comes from, by identifier only: the URA (else the first
    identifier) of the Organization its ``requester`` names (``onBehalfOf``, the agent, or the agent's
    PractitionerRole's organisation), else the sender's server itself (``urn:ietf:rfc:3986``, its base)."""
    agent = requester.get("agent") if isinstance(requester, dict) else None
    candidates = [((requester.get("onBehalfOf") or {}) if isinstance(requester, dict) else {}).get("reference")]
    candidates.append(agent.get("reference") if isinstance(agent, dict) else None)
    for ext in (agent.get("extension") or []) if isinstance(agent, dict) else []:
        if isinstance(ext, dict) and isinstance(ext.get("valueReference"), dict):
            candidates.append(ext["valueReference"].get("reference"))
    org: Resource | None = None
    for candidate in candidates:
        found = resources.get(str(candidate)) if candidate else None
        if found and found.get("resourceType") == "Organization":
            org = found
        elif found and found.get("resourceType") == "PractitionerRole":
            org = resources.get(str((found.get("organization") or {}).get("reference")))
        if org is not None:
            break
    identifiers = [i for i in (org or {}).get("identifier") or [] if i.get("system") and i.get("value")]
    chosen = next((i for i in identifiers if i["system"] == URA), identifiers[0] if identifiers else None)
    out: dict[str, Any] = {
        "identifier": {"system": chosen["system"], "value": chosen["value"]}
        if chosen
        else {"system": SOURCE, "value": sender_base}
    }
    if org is not None and org.get("name"):
        out["display"] = org["name"]
    return out


def _with_state(theirs: Resource, ours: Resource) -> Resource:
    """The sender's Task with the state elements the receiver owns taken from the hub's Task."""
    out = {**theirs, "status": ours["status"]}
    for key in ("statusReason", "businessStatus", "output"):
        if key in ours:
            out[key] = ours[key]
        else:
            out.pop(key, None)
    return out


def _location_id(response: dict[str, Any], entries: list[dict[str, Any]], res_type: str) -> str:
    for sent, got in zip(entries, response.get("entry") or [], strict=False):
        if sent["resource"]["resourceType"] == res_type:
            location = str((got.get("response") or {}).get("location", ""))
            parts = location.split("/")
            if res_type in parts[:-1]:
                return parts[parts.index(res_type) + 1]
    raise TransferError(res_type, f"the hub's transaction response names no {res_type}")
