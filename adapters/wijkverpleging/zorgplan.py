"""The nursing care plan: the nursing system's problems, interventions and outcomes in the shared care plan.

The nursing system (FHIR STU3) holds a nursing CarePlan for the client: problems (Conditions coded in
Omaha System, NANDA-I or SNOMED CT), interventions (activities, each with an element ``id``) and outcomes
(Goals). :meth:`NursingCarePlan.push` brings them into the hub:

- the problems and outcomes as the organisation's own Conditions and Goals (conditional updates keyed by
  the nursing system's resource URL, ``urn:ietf:rfc:3986``), in ONE transaction with
- the interventions as activities of the client's shared care plan (category ``gedeeld-zorgplan``),
  performed by the organisation (``detail.performer``), each carrying the nursing system's activity as
  :data:`SOURCE_ACTIVITY`. The organisation is a participant of the plan, not its coordinator: it adds
  activities it performs and changes their status (the hub's ``careplan-*`` rules); it never touches
  another party's activity.

A status change made in the hub on one of these activities (by the coordinator, or by the organisation's
own people in the hub) is sent back to the nursing system by :meth:`NursingCarePlan.pull_back`; one the
nursing system made is brought to the hub by the next push. Which side changed is told by the last status
the two agreed on (kept in the adapter's state): a nursing system that is down keeps the change pending.
"""

from __future__ import annotations

import copy
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.common.client import HubClient, RetryPolicy
from adapters.wijkverpleging.convert import InvalidResource, Resource, check_r4, to_r4
from adapters.wijkverpleging.sender_api import (
    CounterpartUnavailable,
    Stu3Server,
    TransferError,
    references,
    rewrite_references,
)
from adapters.wijkverpleging.state import State

log = logging.getLogger("adapters.wijkverpleging")

SOURCE = "urn:ietf:rfc:3986"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
SHARED = "https://zorgnet-hub.nl/fhir/CodeSystem/careplan-category|gedeeld-zorgplan"
SOURCE_ACTIVITY = "https://zorgnet-hub.nl/fhir/StructureDefinition/nursing-activity-source"
#: R4 activity states without an STU3 counterpart, as the nursing system (STU3) hears them.
TO_STU3_STATUS = {"stopped": "cancelled", "entered-in-error": "cancelled"}


@dataclass(frozen=True)
class Synced:
    """What one push did: activities added to and changed in the shared care plan."""

    hub_plan_id: str
    added: int
    changed: int


def activity_key(base: str, plan_id: str, activity_id: str) -> str:
    return f"{base.rstrip('/')}/CarePlan/{plan_id}#{activity_id}"


def _source_key(activity: Any) -> str | None:
    for ext in (activity.get("extension") or []) if isinstance(activity, dict) else []:
        if isinstance(ext, dict) and ext.get("url") == SOURCE_ACTIVITY:
            return str(ext.get("valueUri"))
    return None


class NursingCarePlan:
    """Sync the nursing care plans of the nursing system at ``base`` for organisation ``own_ura``."""

    def __init__(
        self,
        hub: HubClient,
        http: httpx.AsyncClient,
        state: State,
        own_ura: str,
        base: str,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.hub = hub
        self.state = state
        self.own_ura = own_ura
        self.base = base.rstrip("/")
        self.server = Stu3Server(self.base, http, retry)

    async def _patient_id(self, patient: Resource) -> str:
        bsn = next((i.get("value") for i in patient.get("identifier") or [] if i.get("system") == BSN), None)
        if not bsn:
            raise TransferError(f"Patient/{patient.get('id')}", "the client has no BSN to find them in the network by")
        found = await self.hub.search("Patient", {"identifier": f"{BSN}|{bsn}"})
        if not found:
            raise TransferError(f"Patient/{patient.get('id')}", "the client is not in the network (or not yours)")
        return str(found[0]["id"])

    async def push(self, plan_id: str) -> Synced:
        """The nursing CarePlan ``plan_id`` into the client's shared care plan (one transaction)."""
        plan = await self.server.read(f"CarePlan/{plan_id}")
        pulled = await self.server.pull(references(plan))
        patients = {ref: await self._patient_id(r) for ref, r in pulled.items() if ref.startswith("Patient/")}
        if not patients:
            raise TransferError(f"CarePlan/{plan_id}", "the nursing care plan names no client")
        patient_id = next(iter(patients.values()))
        shared = await self.hub.search(
            "CarePlan", {"subject": f"Patient/{patient_id}", "category": SHARED, "status": "active"}
        )
        if not shared:
            raise TransferError(f"CarePlan/{plan_id}", "the client has no active shared care plan to join")
        hub_plan = shared[0]
        orgs = await self.hub.search("Organization", {"identifier": f"{URA}|{self.own_ura}"})
        if not orgs:
            raise TransferError(f"CarePlan/{plan_id}", f"organisation {self.own_ura} is not registered in the hub")
        org = orgs[0]
        full_urls = {ref: f"urn:uuid:{uuid.uuid4()}" for ref in pulled if ref.split("/")[0] in ("Condition", "Goal")}
        targets = {**full_urls, **{ref: f"Patient/{pid}" for ref, pid in patients.items()}}
        entries: list[dict[str, Any]] = []
        for ref, stu3 in pulled.items():
            if ref not in full_urls:
                continue  # the client (the hub's record), practitioners and organisations stay the nursing system's
            r4 = to_r4(stu3)
            r4.pop("id", None)
            rewrite_references(r4, targets)
            key = {"system": SOURCE, "value": f"{self.base}/{ref}"}
            r4["identifier"] = [*(r4.get("identifier") or []), key]
            try:
                check_r4(r4)
            except InvalidResource as exc:
                raise TransferError(ref, str(exc)) from exc
            entries.append(
                {
                    "fullUrl": full_urls[ref],
                    "resource": r4,
                    "request": {"method": "PUT", "url": f"{r4['resourceType']}?identifier={SOURCE}|{self.base}/{ref}"},
                }
            )
        new_plan, added, changed = self._merge(hub_plan, plan, targets, org)
        if added or changed:
            version = (hub_plan.get("meta") or {}).get("versionId")
            request: dict[str, Any] = {"method": "PUT", "url": f"CarePlan/{hub_plan['id']}"}
            if version:
                request["ifMatch"] = f'W/"{version}"'
            entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": new_plan, "request": request})
        if entries:
            await self.hub.transaction(entries)
        for activity in plan.get("activity") or []:
            detail = activity.get("detail") or {}
            if activity.get("id") and detail.get("status"):
                self.state.agree(
                    activity_key(self.base, plan_id, activity["id"]), str(hub_plan["id"]), str(detail["status"])
                )
        log.info(
            "nursing care plan %s/CarePlan/%s: %d activities added, %d changed", self.base, plan_id, added, changed
        )
        return Synced(str(hub_plan["id"]), added, changed)

    def _merge(
        self, hub_plan: Resource, plan: Resource, targets: dict[str, str], org: Resource
    ) -> tuple[Resource, int, int]:
        out = copy.deepcopy(hub_plan)
        out.pop("meta", None)
        activities = out.setdefault("activity", [])
        mine = {_source_key(a): a for a in activities if _source_key(a)}
        added = changed = 0
        for activity in plan.get("activity") or []:
            if not activity.get("id") or not isinstance(activity.get("detail"), dict):
                continue
            key = activity_key(self.base, str(plan["id"]), activity["id"])
            detail = activity["detail"]
            status = str(detail.get("status", "unknown"))
            existing = mine.get(key)
            if existing is not None:
                agreed = self.state.agreed(key)
                ours = existing.setdefault("detail", {})
                if agreed is not None and agreed[1] != status and ours.get("status") != status:
                    ours["status"] = status  # the nursing system changed it since the last agreement
                    if detail.get("statusReason"):
                        ours["statusReason"] = {"text": str(detail["statusReason"])}
                    changed += 1
                if (
                    activity.get("outcomeCodeableConcept")
                    and existing.get("outcomeCodeableConcept") != activity["outcomeCodeableConcept"]
                ):
                    existing["outcomeCodeableConcept"] = activity["outcomeCodeableConcept"]
                    changed += 1
                continue
            activities.append(self._activity(key, activity, targets, org))
            added += 1
        return out, added, changed

    def _activity(self, key: str, activity: Resource, targets: dict[str, str], org: Resource) -> Resource:
        detail = activity["detail"]
        r4: dict[str, Any] = {
            "status": detail.get("status", "unknown"),
            "code": detail.get("code"),
            "performer": [{"reference": f"Organization/{org['id']}", "display": org.get("name")}],
        }
        for name in ("description", "scheduledPeriod", "scheduledString", "scheduledTiming"):
            if detail.get(name):
                r4[name] = detail[name]
        if detail.get("statusReason"):
            r4["statusReason"] = {"text": str(detail["statusReason"])}
        for name in ("reasonReference", "goal"):
            refs = [
                {**r, "reference": targets[r["reference"]]}
                for r in detail.get(name) or []
                if r.get("reference") in targets
            ]
            if refs:
                r4[name] = refs
        out: dict[str, Any] = {"extension": [{"url": SOURCE_ACTIVITY, "valueUri": key}], "detail": r4}
        if activity.get("outcomeCodeableConcept"):
            out["outcomeCodeableConcept"] = activity["outcomeCodeableConcept"]
        return out

    async def pull_back(self) -> list[tuple[str, str]]:
        """Send every status changed in the hub on the organisation's activities back to the nursing
        system; ``(activity key, status)`` delivered."""
        delivered: list[tuple[str, str]] = []
        for hub_plan_id in self.state.careplans():
            hub_plan = await self.hub.read("CarePlan", hub_plan_id)
            for activity in hub_plan.get("activity") or []:
                key = _source_key(activity)
                agreed = self.state.agreed(key) if key and key.startswith(self.base + "/") else None
                status = str((activity.get("detail") or {}).get("status"))
                if key is None or agreed is None or agreed[1] == status:
                    continue
                plan_ref, activity_id = key[len(self.base) + 1 :].split("#", 1)
                try:
                    theirs = await self.server.read(plan_ref)
                    for item in theirs.get("activity") or []:
                        if item.get("id") == activity_id:
                            item.setdefault("detail", {})["status"] = TO_STU3_STATUS.get(status, status)
                            reason = (activity.get("detail") or {}).get("statusReason") or {}
                            if reason.get("text"):
                                item["detail"]["statusReason"] = reason["text"]
                    await self.server.update(theirs)
                except CounterpartUnavailable as exc:
                    log.warning("activity %s status %s not sent yet (retried later): %s", key, status, exc)
                    continue
                self.state.agree(key, hub_plan_id, status)
                delivered.append((key, status))
        return delivered
