"""``Patient/{id}/$access``: who can see which categories of this client's data, and why.

For the client (and their legal representative) and administrators: the organisations with a care
relationship and, per data category, whether they may read it and which rule decided; the persons
the client delegated to, with their categories; the receivers of overdrachten with what the Task's
state lets them read ("Verpleeghuis X: advance notice only, Task/123 requested"). It is computed
with the same rules that ``access_grant`` holds (:func:`hub.access.grants.explain`), at this moment.
"""

from __future__ import annotations

from typing import Any

import orjson

from hub.access.grants import CATEGORIES, PUBLIC, Rule, explain
from hub.access.overview import access_facts
from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.operations import Operation
from hub.api.result import FhirResult
from hub.fhir.instants import now_us, to_iso
from hub.store.tables import DATE_MAX, DATE_MIN
from hub.workflows.overdracht import describe_access


async def run(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    assert route.res_id
    await call.repo.read("Patient", route.res_id, conn=call.conn)  # not visible -> 404
    call.policy.check_operation("access")
    now = now_us()
    async with call.repo.reading(call.conn) as conn:
        facts = await access_facts(conn, route.res_id, now)
    relations, rules_rows, types, names, sources = facts.relations, facts.rules, facts.types, facts.names, facts.sources
    uras = sorted({r["org_ura"] for r in relations})
    handovers = facts.handovers
    rules = [
        (
            Rule(r["decision"], r["category"], r["actor_ura"], r["org_type"], r["purpose"], r["start"], r["end"]),
            sources.get(r["source_pid"], ""),
        )
        for r in rules_rows
    ]
    out: list[dict[str, Any]] = []
    for ura in uras:
        why_related = sorted({sources.get(r["source_pid"], "") for r in relations if r["org_ura"] == ura})
        parts: list[dict[str, Any]] = [
            {"name": "ura", "valueString": ura},
            *([{"name": "name", "valueString": names[ura]}] if ura in names else []),
            *({"name": "careRelationship", "valueReference": {"reference": ref}} for ref in why_related if ref),
        ]
        for category in CATEGORIES:
            if category in PUBLIC:
                continue
            decision, deciding = explain(category, ura, types.get(ura, frozenset()), [r for r, _ in rules])
            parts.append(
                {
                    "name": "category",
                    "part": [
                        {"name": "code", "valueCode": category},
                        {"name": "access", "valueBoolean": decision == "permit"},
                        {"name": "reason", "valueString": _reason(decision, deciding, rules)},
                    ],
                }
            )
        out.append({"name": "organisation", "part": parts})
    for source_pid, ura, status in sorted(handovers, key=lambda h: (sources.get(h[0], ""), h[1])):
        ref = sources.get(source_pid, "")
        name = names.get(ura) or ura
        what = describe_access(status)
        out.append(
            {
                "name": "overdracht",
                "part": [
                    {"name": "ura", "valueString": ura},
                    {"name": "name", "valueString": name},
                    {"name": "task", "valueReference": {"reference": ref}},
                    {"name": "status", "valueCode": status},
                    {"name": "access", "valueString": f"{name}: {what}, {ref} {status}"},
                ],
            }
        )
    for d in facts.delegations:
        if (d["period_start"] or DATE_MIN) > now or (d["period_end"] or DATE_MAX) <= now:
            continue
        parts = [{"name": "person", "valueString": d["person_id"]}, {"name": "role", "valueCode": d["role_code"]}]
        parts += [{"name": "category", "valueCode": c} for c in orjson.loads(d["categories"] or "[]")]
        if d["period_end"]:
            parts.append({"name": "until", "valueDateTime": to_iso(d["period_end"])})
        out.append({"name": "delegation", "part": parts})
    return FhirResult(200, {"resourceType": "Parameters", "parameter": out})


def _reason(decision: str, deciding: list[Rule], rules: list[tuple[Rule, str]]) -> str:
    if not deciding:
        if decision == "closed":
            return "Care relationship, but this category needs the client's explicit permission (opt-in)"
        return "Care relationship, and the client has set no rule for this category: open by default"
    source = ", ".join(sorted({ref for r, ref in rules if r in deciding and ref}))
    verb = "objects" if decision == "deny" else "permits"
    return f"The client {verb} ({source})"


OPERATION = Operation(
    name="access",
    levels=frozenset({"instance"}),
    run=run,
    types=frozenset({"Patient"}),
    definition="https://zorgnet-hub.nl/fhir/OperationDefinition/Patient-access",
)
