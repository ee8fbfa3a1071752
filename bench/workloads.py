"""The workloads: ingest, the public CRUD chain, read-by-id, the professional search mix and the PGO
``$everything``, each as a scenario for :func:`bench.driver.run_load`.

Loading *is* the ingest workload: every client's network goes in as one transaction Bundle, and the
server ids in the response are kept (:class:`Loaded`) so the later workloads know what to ask for.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench import crud_chain
from bench.auth import TokenCache
from bench.driver import LoadResult, Recorder, run_load
from bench.generator import BSN, LOINC, OPEN_TASK_STATES, SNOMED, UZI, Network, Professional, resolve_references

#: Prefer header for loading: a client loading data needs the ids, not the resources back.
MINIMAL = {"Prefer": "return=minimal"}


@dataclass(slots=True)
class ClientRecord:
    """A loaded client: BSN, server ids by resource type, the team and observation codes used."""

    index: int
    bsn: str
    patient: str
    ids: dict[str, list[str]]
    team: list[Professional]
    observation_codes: list[str]
    task_owner_key: str | None


@dataclass
class Loaded:
    """What is in the database so far (grows as a run loads more clients)."""

    network: Network
    #: Conditional reference -> literal reference, for organisations and practitioners.
    literal: dict[str, str] = field(default_factory=dict)
    #: Organisation key -> server id.
    org_ids: dict[str, str] = field(default_factory=dict)
    clients: list[ClientRecord] = field(default_factory=list)
    resources: int = 0

    def professionals_with_clients(self, count: int) -> list[tuple[Professional, list[ClientRecord]]]:
        """Up to ``count`` team professionals (of different organisations), each with the clients they serve."""
        serving: dict[str, list[ClientRecord]] = {}
        pros: dict[str, Professional] = {}
        for c in self.clients:
            for p in c.team:
                serving.setdefault(p.key, []).append(c)
                pros[p.key] = p
        ranked = sorted(serving, key=lambda k: (-len(serving[k]), k))
        out, orgs = [], set()
        for key in ranked:
            if pros[key].org.key in orgs:
                continue
            orgs.add(pros[key].org.key)
            out.append((pros[key], serving[key]))
            if len(out) == count:
                break
        return out


def _location_id(location: str) -> tuple[str, str]:
    """``.../Patient/123/_history/1`` -> ("Patient", "123")."""
    parts = location.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        return parts[-4], parts[-3]
    return parts[-2], parts[-1]


async def load_registry(base: str, loaded: Loaded, headers: dict[str, str]) -> int:
    """Organisations, practitioners and roles (not timed: setup before the ingest workload)."""
    import aiohttp

    count = 0
    async with aiohttp.ClientSession() as session:
        for bundle in loaded.network.registry_bundles():
            async with session.post(
                base,
                data=orjson.dumps(bundle),
                headers={
                    "Content-Type": "application/fhir+json",
                    **MINIMAL,
                    **headers,
                },
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"loading the registry failed: {resp.status} {body[:500]!r}")
            response = orjson.loads(body)
            for entry, answer in zip(bundle["entry"], response.get("entry", []), strict=True):
                res_type, res_id = _location_id(answer["response"]["location"])
                ident = entry["resource"]["identifier"][0]
                loaded.literal[f"{res_type}?identifier={ident['system']}|{ident['value']}"] = f"{res_type}/{res_id}"
                count += 1
    for orgs in loaded.network.organisations.values():
        for org in orgs:
            loaded.org_ids[org.key] = loaded.literal[org.conditional].split("/", 1)[1]
    loaded.resources += count
    return count


async def ingest(
    base: str,
    loaded: Loaded,
    start: int,
    stop: int,
    *,
    concurrency: int,
    max_seconds: float,
    tokens: TokenCache,
    progress: Any = None,
) -> LoadResult:
    """Load clients ``start..stop-1``; throughput is in resources/s.

    Per client, as the systems involved would: the nurse's system (wijkverpleging in the team) sends
    the network as one transaction Bundle, then the client's privacy consent is registered (by an
    administrator, as a paper consent would be; professionals may not write consent).
    """
    from bench.driver import StopLoad

    indexes = iter(range(start, stop))
    resources = 0
    admin = tokens.headers("admin")

    async def scenario(rec: Recorder, _vu: int, _it: int) -> None:
        nonlocal resources
        index = next(indexes, None)
        if index is None:
            raise StopLoad
        client = loaded.network.client(index)
        bundle = resolve_references(client.bundle, loaded.literal)
        headers = {**MINIMAL, **tokens.headers(client.author.spec)}
        status, body = await rec.request("transaction", "POST", "", body=bundle, headers=headers)
        if status != 200:
            return
        answers = orjson.loads(body).get("entry", [])
        ids: dict[str, list[str]] = {}
        for answer in answers:
            res_type, res_id = _location_id(answer["response"]["location"])
            ids.setdefault(res_type, []).append(res_id)
        patient = ids["Patient"][0]
        consent = resolve_references(
            client.consent, {client.consent["patient"]["reference"]: f"Patient/{patient}", **loaded.literal}
        )
        status, body = await rec.request("consent", "POST", "Consent", body=consent, headers=admin, expect=(201,))
        if status == 201:
            ids.setdefault("Consent", []).append(orjson.loads(body).get("id", ""))
        written = len(answers) + (status == 201)
        resources += written
        loaded.clients.append(
            ClientRecord(
                index,
                client.bsn,
                patient,
                ids,
                client.team,
                client.observation_codes,
                client.task_owner.key if client.task_owner else None,
            )
        )
        if progress is not None:
            progress(1, written)

    for i in range(start, min(stop, start + 2000)):  # mint the loaders' tokens before the clock starts
        tokens.headers(loaded.network.client(i).author.spec)
    result = await run_load(
        base,
        scenario,
        workload="ingest",
        concurrency=concurrency,
        max_requests=2 * (stop - start),
        max_seconds=max_seconds,
        warmup_seconds=0,
    )
    loaded.clients.sort(key=lambda c: c.index)
    loaded.resources += resources
    done = len(result.latencies.get("transaction", []))
    result.extra.update(
        {
            "clients": done,
            "resources": resources,
            "resources_per_s": round(resources / result.seconds, 1) if result.seconds else 0.0,
            "resources_per_bundle": round(resources / max(1, done), 1),
        }
    )
    return result


_READ_TYPES = ("Patient", "CarePlan", "CareTeam", "Goal", "Observation", "RelatedPerson")


def read_targets(loaded: Loaded, professionals: int = 6) -> list[tuple[str, str]]:
    """(token spec, path) pairs: professionals reading resources of the clients they serve."""
    out: list[tuple[str, str]] = []
    for pro, clients in loaded.professionals_with_clients(professionals):
        for c in clients:
            for res_type in _READ_TYPES:
                out.extend((pro.spec, f"{res_type}/{i}") for i in c.ids.get(res_type, []))
    random.Random("read-targets").shuffle(out)
    return out


async def read_by_id(
    base: str, loaded: Loaded, tokens: TokenCache, *, concurrency: int, max_requests: int, max_seconds: float
) -> LoadResult:
    targets = read_targets(loaded)
    cycle = itertools.cycle(targets)

    async def scenario(rec: Recorder, _vu: int, _it: int) -> None:
        spec, path = next(cycle)
        await rec.request("read", "GET", path, headers=tokens.headers(spec))

    for spec in {s for s, _ in targets}:
        tokens.headers(spec)  # mint before the clock starts
    result = await run_load(
        base, scenario, workload="read", concurrency=concurrency, max_requests=max_requests, max_seconds=max_seconds
    )
    result.extra["distinct_resources"] = len(targets)
    return result


def search_requests(loaded: Loaded, professionals: int = 6) -> list[tuple[str, str, str]]:
    """(kind, token spec, path) of the professional search mix, over several professionals and clients."""
    out: list[tuple[str, str, str]] = []
    status = ",".join(OPEN_TASK_STATES)
    for pro, clients in loaded.professionals_with_clients(professionals):
        for c in clients[:20]:
            code = c.observation_codes[0]
            out += [
                ("bsn", pro.spec, f"Patient?identifier={BSN}|{c.bsn}"),
                (
                    "careplan_include",
                    pro.spec,
                    f"CarePlan?subject=Patient/{c.patient}&status=active&_include=CarePlan:goal"
                    "&_include=CarePlan:care-team",
                ),
                (
                    "observations",
                    pro.spec,
                    f"Observation?subject=Patient/{c.patient}&code={LOINC}|{code}&date=ge2025-03-01&date=lt2026-10-01",
                ),
                ("chained", pro.spec, f"CareTeam?participant:Practitioner.identifier={UZI}|{pro.uzi}&status=active"),
            ]
    owners = sorted({c.task_owner_key for c in loaded.clients if c.task_owner_key})[:professionals]
    for key in owners:
        receiver = loaded.network.professionals[key][0]
        out.append(
            (
                "open_tasks",
                receiver.spec,
                f"Task?owner=Organization/{loaded.org_ids[key]}&status={status}&code={SNOMED}|308292007",
            )
        )
    return out


def _mixed(requests: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Each kind equally often (the task inbox has fewer distinct queries than the others)."""
    by_kind: dict[str, list[tuple[str, str, str]]] = {}
    for r in requests:
        by_kind.setdefault(r[0], []).append(r)
    longest = max(len(v) for v in by_kind.values())
    mixed = [v[i % len(v)] for i in range(longest) for v in by_kind.values()]
    random.Random("search-mix").shuffle(mixed)
    return mixed


async def search_mix(
    base: str, loaded: Loaded, tokens: TokenCache, *, concurrency: int, max_requests: int, max_seconds: float
) -> LoadResult:
    requests = _mixed(search_requests(loaded))
    cycle = itertools.cycle(requests)
    for spec in {s for _, s, _ in requests}:
        tokens.headers(spec)

    async def scenario(rec: Recorder, _vu: int, _it: int) -> None:
        kind, spec, path = next(cycle)
        await rec.request(kind, "GET", path, headers=tokens.headers(spec))

    matches = await _probe_matches(base, requests, tokens)
    result = await run_load(
        base, scenario, workload="search", concurrency=concurrency, max_requests=max_requests, max_seconds=max_seconds
    )
    result.extra["distinct_queries"] = len(set(requests))
    result.extra["mean_entries_per_kind"] = matches
    result.extra["clients_loaded"] = len(loaded.clients)
    return result


async def _probe_matches(
    base: str, requests: list[tuple[str, str, str]], tokens: TokenCache, per_kind: int = 5
) -> dict[str, float]:
    """Mean Bundle entries per query kind (a few of each): a search that finds nothing is no benchmark."""
    import aiohttp

    seen: dict[str, list[int]] = {}
    async with aiohttp.ClientSession() as session:
        for kind, spec, path in requests:
            if len(seen.setdefault(kind, [])) >= per_kind:
                continue
            async with session.get(f"{base}/{path}", headers=tokens.headers(spec)) as resp:
                body = orjson.loads(await resp.read())
            seen[kind].append(len(body.get("entry", [])) if resp.status == 200 else -1)
    return {k: round(sum(v) / len(v), 1) for k, v in sorted(seen.items())}


#: Compartment searches standing in for ``$everything`` while the hub does not have it.
_COMPARTMENT_TYPES = (
    "CarePlan",
    "CareTeam",
    "Consent",
    "Goal",
    "Observation",
    "RelatedPerson",
    "ServiceRequest",
    "Task",
)


def _everything_fallback(patient: str) -> dict[str, Any]:
    entries = [{"request": {"method": "GET", "url": f"Patient/{patient}"}}]
    entries += [{"request": {"method": "GET", "url": f"Patient/{patient}/{t}?_count=100"}} for t in _COMPARTMENT_TYPES]
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}


async def pgo_everything(
    base: str,
    loaded: Loaded,
    tokens: TokenCache,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    clients: int = 8,
) -> LoadResult:
    """The logged-in client's ``Patient/{id}/$everything`` (a batch of compartment searches until it exists)."""
    import aiohttp

    chosen = loaded.clients[:: max(1, len(loaded.clients) // clients)][:clients]
    for c in chosen:
        tokens.headers(f"client:{c.bsn}")
    probe = chosen[0]
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{base}/Patient/{probe.patient}/$everything", headers=tokens.headers(f"client:{probe.bsn}")
        ) as resp,
    ):
        probe_body = await resp.read()
        native = resp.status == 200
    entries = len(orjson.loads(probe_body).get("entry", [])) if native else 0
    cycle = itertools.cycle(chosen)

    async def scenario(rec: Recorder, _vu: int, _it: int) -> None:
        c = next(cycle)
        headers = tokens.headers(f"client:{c.bsn}")
        if native:
            await rec.request("everything", "GET", f"Patient/{c.patient}/$everything?_count=1000", headers=headers)
        else:
            await rec.request("everything", "POST", "", body=_everything_fallback(c.patient), headers=headers)

    result = await run_load(
        base, scenario, workload="pgo", concurrency=concurrency, max_requests=max_requests, max_seconds=max_seconds
    )
    result.extra["entries_first_client"] = entries
    result.extra["mode"] = (
        "$everything"
        if native
        else ("batch Bundle of Patient read + 8 compartment searches (the hub has no $everything yet)")
    )
    return result


async def crud(
    base: str, tokens: TokenCache, *, spec: str, concurrency: int, max_requests: int, max_seconds: float
) -> LoadResult:
    """The public CRUD chain: create 9 linked resources, read each, update each, delete each."""
    headers = tokens.headers(spec)

    async def scenario(rec: Recorder, vu: int, it: int) -> None:
        await crud_chain.run_chain(rec, f"{vu}-{it}", headers)

    return await run_load(
        base, scenario, workload="crud", concurrency=concurrency, max_requests=max_requests, max_seconds=max_seconds
    )


__all__ = [
    "ClientRecord",
    "Loaded",
    "crud",
    "ingest",
    "load_registry",
    "pgo_everything",
    "read_by_id",
    "read_targets",
    "search_mix",
    "search_requests",
]
