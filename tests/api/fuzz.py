"""Schemathesis against a live hub: every operation of ``/openapi.json``, as several identities.

Cases are generated per operation by schemathesis (positive: values the document allows; negative:
values it forbids), seeded, and each case is sent once per identity over real HTTP. The only check
is the one the hub promises for any input: no 5xx. Known ids are mixed in so that read, update,
patch, delete and history reach existing resources, not only 404s.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.openapi import from_dict

#: Resource types the bounded run covers: the hub's own care domain and what it points at.
CORE_TYPES = ("Patient", "Observation", "CarePlan", "Task", "Consent", "AuditEvent")
#: ``make fuzz-deep``: more types, many examples each.
DEEP_TYPES = (
    *CORE_TYPES,
    "ServiceRequest",
    "Organization",
    "CareTeam",
    "Practitioner",
    "QuestionnaireResponse",
    "Condition",
    "Goal",
)


@dataclass
class FuzzReport:
    cases: int = 0
    calls: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    operations: int = 0

    def add(self, status: int, what: str) -> None:
        self.calls += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status >= 500 and len(self.failures) < 50:
            self.failures.append(what)


def _type_of(path: str) -> str | None:
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[1][:1].isupper() else None


def selected(path: str, types: Iterable[str] | None) -> bool:
    """Whether an operation's path is in the run: system paths always, type paths by ``types``."""
    if types is None:
        return True
    rtype = _type_of(path)
    return rtype is None or rtype in types


def run_schemathesis(
    root: str,
    tokens: dict[str, str],
    *,
    examples: int,
    seed_value: int,
    types: Iterable[str] | None = CORE_TYPES,
    known_ids: dict[str, str] | None = None,
) -> FuzzReport:
    """Fuzz the hub at ``root`` (server root, not the FHIR base); returns counts and any 5xx seen."""
    document = httpx.get(f"{root}/openapi.json", timeout=30).json()
    schema = from_dict(document)
    report = FuzzReport()
    chosen = set(types) if types is not None else None
    known_ids = known_ids or {}
    with httpx.Client(base_url=root, timeout=60) as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            if not selected(operation.path, chosen):
                continue
            report.operations += 1
            rtype = _type_of(operation.path)
            fixed = {"id": known_ids[rtype]} if "{id}" in operation.path and rtype in known_ids else None
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategies = [operation.as_strategy(generation_mode=mode)]
                if fixed is not None:
                    strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=fixed))
                for strategy in strategies:
                    _run(strategy, http, tokens, report, examples, seed_value)
    return report


def _run(
    strategy: Any, http: httpx.Client, tokens: dict[str, str], report: FuzzReport, examples: int, seed_value: int
) -> None:
    @seed(seed_value)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        report.cases += 1
        kwargs = case.as_transport_kwargs(base_url=str(http.base_url).rstrip("/"))
        method, url = kwargs.pop("method"), kwargs.pop("url")
        headers = {k: v for k, v in (kwargs.pop("headers", None) or {}).items() if k.lower() != "authorization"}
        body = _body(kwargs)
        for name, token in tokens.items():
            try:
                response = http.request(
                    method,
                    url,
                    params=kwargs.get("params"),
                    headers={**headers, "Authorization": f"Bearer {token}"},
                    content=body,
                )
            except httpx.HTTPError as exc:
                report.add(599, f"{name} {method} {url}: {exc!r}")
                continue
            shown = f"{name} {method} {url} {kwargs.get('params')} {(body or b'')[:300]!r}"
            report.add(response.status_code, f"{shown} -> {response.status_code} {response.text[:300]}")

    try:
        check()
    except hypothesis.errors.Unsatisfiable:
        pass  # e.g. negative cases for an operation without parameters: there are none


def _body(kwargs: dict[str, Any]) -> bytes | None:
    import orjson

    if "json" in kwargs:
        try:
            return orjson.dumps(kwargs["json"])
        except TypeError:
            return None
    data = kwargs.get("data")
    if isinstance(data, str):
        return data.encode()
    return data if isinstance(data, bytes) else None


def examples_per_operation(default: int) -> int:
    """``HUB_FUZZ_EXAMPLES`` overrides the bounded default (``make fuzz`` sets it for the big run)."""
    return int(os.environ.get("HUB_FUZZ_EXAMPLES", default))
