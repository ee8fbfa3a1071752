"""One sync of a practice: for every client the practice has in a hub care network, bring the GP summary up to date.

Per client, in this order:

1. the client's hub Patient (by BSN) and the practice's own Patient record (by BSN);
2. the summary queries (:func:`~adapters.huisarts.gp.summary_queries`) since the client's high-water
   mark (``_lastUpdated=gt``), every page;
3. filtered (:func:`~adapters.huisarts.mapping.in_summary`) and mapped to the hub's profiles; a record
   that cannot be mapped is logged with its id and parked (left out), the rest goes on;
4. compared with what the hub holds (by the source identifier): only what differs is written;
5. written as ONE transaction Bundle (conditional updates by source identifier, each with a Provenance
   naming the GP system, the source record and its version): all of the client's changes or none;
6. then, and only then, the mark moves (the adapter's own state).

A full run (the first one, or ``--full``) also finds records removed at the source and marks them
entered-in-error in the hub.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from adapters.common.client import HubClient, same_content
from adapters.huisarts.gp import GpClient, summary_queries
from adapters.huisarts.mapping import Context, MappingError, entered_in_error, in_summary, to_hub
from adapters.huisarts.source import check_source
from adapters.huisarts.state import SyncState

log = logging.getLogger("adapter.huisarts")
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
URA = "http://fhir.nl/fhir/NamingSystem/ura"


@dataclass(frozen=True)
class Practice:
    """One GP practice: its organisation (URA) and its system's FHIR endpoint."""

    id: str
    name: str
    ura: str
    fhir_base: str
    fhir_version: str
    token: str


@dataclass
class ClientResult:
    bsn: str
    fetched: int = 0
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    parked: list[str] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class SyncReport:
    clients: list[ClientResult] = field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(c.written for c in self.clients)

    @property
    def fetched(self) -> int:
        return sum(c.fetched for c in self.clients)

    def as_json(self) -> dict[str, Any]:
        return {
            "clients": len(self.clients),
            "fetched": self.fetched,
            "written": self.written,
            "unchanged": sum(c.unchanged for c in self.clients),
            "removed": sum(c.removed for c in self.clients),
            "parked": [p for c in self.clients for p in c.parked],
            "skipped": {c.bsn: c.skipped for c in self.clients if c.skipped},
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Syncer:
    """Syncs one practice into the hub, with the adapter's own hub credentials."""

    def __init__(
        self,
        hub: HubClient,
        gp: GpClient,
        practice: Practice,
        state: SyncState,
        *,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.hub = hub
        self.gp = gp
        self.practice = practice
        self.state = state
        self.today = today

    async def network_clients(self) -> list[tuple[str, str]]:
        """(BSN, hub Patient id) of every client in a care network the practice takes part in."""
        entries = await self.hub.search_entries(
            "CareTeam", [("status", "active"), ("_include", "CareTeam:subject"), ("_count", "200")]
        )
        out: dict[str, str] = {}
        for entry in entries:
            r = entry.get("resource") or {}
            if r.get("resourceType") != "Patient":
                continue
            bsn = next((i.get("value") for i in r.get("identifier", []) if i.get("system") == BSN), None)
            if bsn:
                out.setdefault(str(bsn), str(r["id"]))
        return sorted(out.items())

    async def run(self, *, full: bool = False, concurrency: int = 8) -> SyncReport:
        """Sync every network client, ``concurrency`` at a time (each client is its own unit of work:
        one that fails stops the run, the ones committed before keep their marks)."""
        clients = await self.network_clients()
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(bsn: str, hub_patient_id: str) -> ClientResult:
            async with gate:
                return await self.sync_client(bsn, hub_patient_id, full=full)

        results = await asyncio.gather(*(one(bsn, pid) for bsn, pid in clients))
        return SyncReport(list(results))

    async def sync_client(self, bsn: str, hub_patient_id: str, *, full: bool = False) -> ClientResult:
        p = self.practice
        result = ClientResult(bsn)
        source_patient = await self.gp.patient_by_bsn(bsn)
        if source_patient is None:
            result.skipped = "not a patient of this practice"
            return result
        mark = None if full else self.state.mark(p.id, bsn)
        full = full or mark is None
        ctx = Context(p.id, p.name, p.ura, p.fhir_base, p.fhir_version, hub_patient_id, self.today())
        fetched: list[dict[str, Any]] = []
        medications: dict[str, dict[str, Any]] = {}
        for query in summary_queries(ctx.today):
            params = [("patient", f"Patient/{source_patient['id']}"), *query.params]
            if mark:
                params.append(("_lastUpdated", f"gt{mark}"))
            matches, included = await self.gp.search(query.resource_type, params)
            fetched += matches
            medications |= {f"Medication/{m['id']}": m for m in included if m.get("resourceType") == "Medication"}
        result.fetched = len(fetched)
        synced = self.state.synced_ids(p.id, bsn)
        mapped: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for source in fetched:
            key = (source.get("resourceType", ""), str(source.get("id")))
            if not in_summary(source, ctx.today, synced_before=key in synced):
                continue
            medication = medications.get(str((source.get("medicationReference") or {}).get("reference", "")))
            try:
                check_source(source, p.fhir_version)
                mapped.append((source, to_hub(source, ctx, medication=medication)))
            except MappingError as exc:
                log.warning("parked %s/%s of practice %s: %s", key[0], key[1], p.id, exc)
                result.parked.append(f"{key[0]}/{key[1]}")
        current = await self._in_hub(ctx, [m for _s, m in mapped], synced)
        writes: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = []
        for source, resource in mapped:
            key = (resource["resourceType"], str(source["id"]))
            existing = current.get(key)
            if existing is not None and same_content(existing, self._resolved(resource, current)):
                result.unchanged += 1
                continue
            writes.append((key[0], key[1], resource, source))
        removed: list[tuple[str, str]] = []
        if full:
            seen = {(s.get("resourceType", ""), str(s.get("id"))) for s in fetched}
            for key, _hub_id in synced.items():
                if key not in seen and key in current:
                    writes.append((key[0], key[1], entered_in_error(current[key]), None))
                    removed.append(key)
        new_mark = max((str((s.get("meta") or {}).get("lastUpdated", "")) for s in fetched), default="") or mark
        hub_ids: list[tuple[str, str, str]] = []
        if writes:
            hub_ids = await self._write(ctx, writes, current)
            result.written = len(writes)
            result.removed = len(removed)
        self.state.commit_client(p.id, bsn, new_mark, hub_ids, removed)
        return result

    async def _in_hub(
        self, ctx: Context, resources: list[dict[str, Any]], synced: dict[tuple[str, str], str]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """What the hub holds now for these source records (and every synced one), by (type, source id)."""
        wanted: dict[str, set[str]] = {}
        for r in resources:
            wanted.setdefault(r["resourceType"], set()).add(r["identifier"][0]["value"])
        for kind, source_id in synced:
            wanted.setdefault(kind, set()).add(source_id)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for kind, ids in wanted.items():
            system = ctx.source_system(kind)
            ordered = sorted(ids)
            for start in range(0, len(ordered), 40):
                chunk = ordered[start : start + 40]
                found = await self.hub.search(
                    kind, [("identifier", ",".join(f"{system}|{i}" for i in chunk)), ("_count", "100")]
                )
                for r in found:
                    found_id = next(
                        (i.get("value") for i in r.get("identifier", []) if i.get("system") == system), None
                    )
                    if found_id is not None:
                        out[(kind, str(found_id))] = r
        return out

    @staticmethod
    def _resolved(
        resource: dict[str, Any],
        current: dict[tuple[str, str], dict[str, Any]],
        full_urls: dict[tuple[str, str], str] | None = None,
    ) -> dict[str, Any]:
        """The resource with its conditional references to synced records replaced: by the hub id of a
        record the hub holds (as the hub stores it, so comparing works), else by the ``fullUrl`` of a
        record written in the same transaction; others stay conditional."""
        if resource["resourceType"] != "EpisodeOfCare" or "diagnosis" not in resource:
            return resource
        out = {**resource, "diagnosis": []}
        for d in resource["diagnosis"]:
            key = ("Condition", d["condition"]["reference"].rsplit("|", 1)[-1])
            target = current.get(key)
            if target is not None:
                d = {"condition": {"reference": f"Condition/{target['id']}"}}
            elif full_urls and key in full_urls:
                d = {"condition": {"reference": full_urls[key]}}
            out["diagnosis"].append(d)
        return out

    async def _write(
        self,
        ctx: Context,
        writes: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]],
        current: dict[tuple[str, str], dict[str, Any]],
    ) -> list[tuple[str, str, str]]:
        """One transaction: every changed record (conditional update by source identifier) with its Provenance."""
        entries: list[dict[str, Any]] = []
        full_urls: dict[tuple[str, str], str] = {}
        for kind, source_id, _resource, _source in writes:
            full_urls[(kind, source_id)] = f"urn:uuid:{uuid.uuid4()}"
        recorded = _now()
        for kind, source_id, resource, source in writes:
            body = self._resolved(resource, current, full_urls)
            system = ctx.source_system(kind)
            full_url = full_urls[(kind, source_id)]
            entries.append(
                {
                    "fullUrl": full_url,
                    "resource": body,
                    "request": {"method": "PUT", "url": f"{kind}?identifier={system}|{source_id}"},
                }
            )
            version = str(((source or {}).get("meta") or {}).get("versionId", "")) if source else ""
            what = f"{kind}/{source_id}" + (f"/_history/{version}" if version else "")
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                    "request": {"method": "POST", "url": "Provenance"},
                    "resource": {
                        "resourceType": "Provenance",
                        "target": [{"reference": full_url}],
                        "recorded": recorded,
                        "activity": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                    "code": "UPDATE" if source else "NULLIFY",
                                }
                            ]
                        },
                        "agent": [
                            {
                                "type": {
                                    "coding": [
                                        {
                                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                            "code": "author",
                                        }
                                    ]
                                },
                                "who": {
                                    "identifier": {"system": URA, "value": ctx.practice_ura},
                                    "display": ctx.practice_name,
                                },
                            }
                        ],
                        "entity": [
                            {
                                "role": "source",
                                "what": {
                                    "identifier": {"system": ctx.source_base.rstrip("/"), "value": what},
                                    "display": f"{ctx.practice_name}: {what}"
                                    + ("" if source else " (removed at the source)"),
                                },
                            }
                        ],
                    },
                }
            )
        response = await self.hub.transaction(entries)
        out: list[tuple[str, str, str]] = []
        for (kind, source_id, _r, _s), entry in zip(writes, response.get("entry", [])[0::2], strict=False):
            parts = str((entry.get("response") or {}).get("location", "")).split("/")
            if kind in parts[:-1]:
                out.append((kind, source_id, parts[parts.index(kind) + 1]))
        return out


__all__ = ["ClientResult", "Practice", "SyncReport", "Syncer"]
