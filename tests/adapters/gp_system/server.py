"""A fake GP information system (HIS): a FHIR server (STU3 or R4) over the practice's records, run as its
own process on loopback in the tests.

    python -m tests.adapters.gp_system.server --port 9100 --version stu3 --clients 200 --token secret \
        [--fail-every 7] [--slow-ms 1500] [--delay-ms 50]

It answers the queries a qualified GP system answers in Nictiz's GP data (MedMij) TestScripts, for
one practice: ``Patient?identifier=`` (with ``_include=Patient:general-practitioner``), and per client
``EpisodeOfCare``, ``Condition``, ``Flag``, ``AllergyIntolerance``, ``MedicationRequest`` (``category``,
``_include=MedicationRequest:medication``), ``Observation`` (``code``, ``date``), ``Consent``; with
``patient=``, ``_lastUpdated``, ``_count`` and paging by ``next`` links. Unknown search parameters are
refused (400), as a strict server does. Faults on purpose: ``--fail-every N`` answers every N-th search
with a 500, ``--slow-ms`` delays every second page. ``POST /admin/put`` stores a new version of a
resource (a correction at the source); ``POST /admin/delete/{type}/{id}`` deletes one; ``POST
/admin/delay/{ms}`` changes ``--delay-ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.adapters.gp_system.fixtures import Practice

FHIR_JSON = "application/fhir+json"
_COMMON = {"_count", "_offset", "_lastUpdated", "_include", "_format"}
_PARAMS: dict[str, set[str]] = {
    "Patient": {"identifier"},
    "EpisodeOfCare": {"patient", "status"},
    "Condition": {"patient", "clinical-status"},
    "Flag": {"patient"},
    "AllergyIntolerance": {"patient"},
    "MedicationRequest": {"patient", "category", "status"},
    "Observation": {"patient", "code", "date", "category"},
    "Consent": {"patient", "category"},
    "Medication": set(),
    "Organization": set(),
    "Practitioner": set(),
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _outcome(status: int, text: str) -> JSONResponse:
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": text}]},
        status_code=status,
        media_type=FHIR_JSON,
    )


def _token_matches(concepts: list[Any], wanted: str) -> bool:
    system, sep, code = wanted.partition("|")
    if not sep:
        system, code = "", wanted
    for concept in concepts:
        for coding in (concept or {}).get("coding", []):
            if (not system or coding.get("system") == system) and (not code or coding.get("code") == code):
                return True
    return False


class GpSystem:
    """The practice's records and the fault plan."""

    def __init__(
        self, practice: Practice, token: str, fail_every: int = 0, slow_ms: int = 0, delay_ms: int = 0
    ) -> None:
        self.practice = practice
        self.token = token
        self.fail_every = fail_every
        #: Queries answered 500 once; a retry of the same query is answered (a flaky system, not a
        #: dead one: without this, concurrent clients in lock step can hit every Nth number each time).
        self.failed: set[str] = set()
        self.slow_ms = slow_ms
        self.delay_ms = delay_ms
        self.searches = itertools.count(1)
        self.log: list[str] = []
        stamp = _now()
        for by_id in practice.resources.values():
            for r in by_id.values():
                r["meta"] = {**r.get("meta", {}), "versionId": "1", "lastUpdated": stamp}

    def store(self, resource: dict[str, Any]) -> dict[str, Any]:
        by_id = self.practice.resources.setdefault(resource["resourceType"], {})
        old = by_id.get(resource["id"])
        version = int(old["meta"]["versionId"]) + 1 if old else 1
        time.sleep(0.002)  # a later write always has a later lastUpdated
        resource["meta"] = {**resource.get("meta", {}), "versionId": str(version), "lastUpdated": _now()}
        by_id[resource["id"]] = resource
        return resource

    def matches(self, r: dict[str, Any], name: str, value: str) -> bool:
        if name == "identifier":
            system, _, code = value.partition("|")
            return any(i.get("system") == system and i.get("value") == code for i in r.get("identifier", []))
        if name in ("patient", "subject"):
            ref = (r.get("subject") or r.get("patient") or {}).get("reference", "")
            return ref == value or ref == f"Patient/{value}"
        if name in ("category", "code"):
            field = r.get(name)
            return _token_matches(field if isinstance(field, list) else [field], value)
        if name == "status":
            return r.get("status") in value.split(",")
        if name == "clinical-status":
            status = r.get("clinicalStatus")
            code = status if isinstance(status, str) else _token_matches([status], value) and value
            return code == value or code is True
        if name == "date":
            prefix, day = (value[:2], value[2:]) if value[:2] in ("ge", "gt", "le", "lt") else ("eq", value)
            effective = r.get("effectiveDateTime") or r.get("dateTime") or ""
            return {
                "ge": effective >= day,
                "gt": effective > day,
                "le": effective[: len(day)] <= day,
                "lt": effective < day,
                "eq": effective.startswith(day),
            }[prefix]
        if name == "_lastUpdated":
            prefix, when = value[:2], _instant(value[2:])
            stamp = _instant(r["meta"]["lastUpdated"])
            return {"gt": stamp > when, "ge": stamp >= when, "lt": stamp < when, "le": stamp <= when}[prefix]
        return False

    def search(self, res_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        found = []
        for r in self.practice.resources.get(res_type, {}).values():
            if all(self.matches(r, n, v) for n, v in params if n not in ("_count", "_offset", "_include", "_format")):
                found.append(r)
        return sorted(found, key=lambda r: (r["meta"]["lastUpdated"], r["id"]))

    def includes(self, matches: list[dict[str, Any]], include: list[str]) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for spec in include:
            for r in matches:
                if spec == "Patient:general-practitioner":
                    refs = [g.get("reference", "") for g in r.get("generalPractitioner", [])]
                elif spec == "MedicationRequest:medication":
                    refs = [(r.get("medicationReference") or {}).get("reference", "")]
                else:
                    continue
                for ref in refs:
                    kind, _, rid = ref.partition("/")
                    target = self.practice.resources.get(kind, {}).get(rid)
                    if target is not None:
                        out[ref] = target
        return list(out.values())


def create_app(system: GpSystem) -> Starlette:
    async def search(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {system.token}":
            return _outcome(401, "a valid bearer token of the practice is required")
        res_type = request.path_params["type"]
        if res_type not in _PARAMS:
            return _outcome(404, f"unknown resource type {res_type}")
        params = list(request.query_params.multi_items())
        unknown = [n for n, _ in params if n not in _PARAMS[res_type] | _COMMON]
        if unknown:
            return _outcome(400, f"unknown search parameter(s) {unknown} for {res_type}")
        number = next(system.searches)
        system.log.append(f"{res_type}?{request.url.query}")
        query = f"{res_type}?{request.url.query}"
        if system.fail_every and number % system.fail_every == 0 and query not in system.failed:
            system.failed.add(query)
            return _outcome(500, "the GP system had a moment")
        offset = int(request.query_params.get("_offset", "0"))
        count = int(request.query_params.get("_count", "50"))
        if system.slow_ms and offset and (offset // max(count, 1)) % 2 == 1:
            await asyncio.sleep(system.slow_ms / 1000)
        if system.delay_ms:
            await asyncio.sleep(system.delay_ms / 1000)
        matches = system.search(res_type, params)
        page = matches[offset : offset + count]
        included = system.includes(page, request.query_params.getlist("_include"))
        base = str(request.base_url).rstrip("/") + request.url.path.rsplit("/", 1)[0]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "searchset",
            "total": len(matches),
            "link": [{"relation": "self", "url": str(request.url)}],
            "entry": [
                {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                for r in page
            ]
            + [
                {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "include"}}
                for r in included
            ],
        }
        if offset + count < len(matches):
            nxt = [(n, v) for n, v in params if n != "_offset"] + [("_offset", str(offset + count))]
            query = "&".join(f"{n}={v}" for n, v in nxt)
            bundle["link"].append({"relation": "next", "url": f"{base}/{res_type}?{query}"})
        return JSONResponse(bundle, media_type=FHIR_JSON)

    async def read(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {system.token}":
            return _outcome(401, "a valid bearer token of the practice is required")
        r = system.practice.resources.get(request.path_params["type"], {}).get(request.path_params["id"])
        return JSONResponse(r, media_type=FHIR_JSON) if r else _outcome(404, "not found")

    async def metadata(_request: Request) -> Response:
        version = "3.0.2" if system.practice.version == "stu3" else "4.0.1"
        return JSONResponse(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": version,
                "format": ["json"],
            },
            media_type=FHIR_JSON,
        )

    async def admin_put(request: Request) -> Response:
        return JSONResponse(system.store(await request.json()))

    async def admin_delete(request: Request) -> Response:
        system.practice.resources.get(request.path_params["type"], {}).pop(request.path_params["id"], None)
        return Response(status_code=204)

    async def admin_log(_request: Request) -> Response:
        return JSONResponse(system.log)

    async def admin_delay(request: Request) -> Response:
        system.delay_ms = int(request.path_params["ms"])
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/fhir/metadata", metadata),
            Route("/fhir/{type}", search),
            Route("/fhir/{type}/{id}", read),
            Route("/admin/put", admin_put, methods=["POST"]),
            Route("/admin/delete/{type}/{id}", admin_delete, methods=["POST"]),
            Route("/admin/log", admin_log),
            Route("/admin/delay/{ms:int}", admin_delay, methods=["POST"]),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", choices=("stu3", "r4"), default="stu3")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--token", default="gp-secret")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--slow-ms", type=int, default=0, help="delay every second page of a search")
    parser.add_argument("--delay-ms", type=int, default=0, help="delay every search")
    args = parser.parse_args()
    system = GpSystem(
        Practice(args.clients, version=args.version, seed=args.seed),
        args.token,
        args.fail_every,
        args.slow_ms,
        args.delay_ms,
    )
    uvicorn.run(create_app(system), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
