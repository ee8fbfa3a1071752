"""WMO301 toewijzing applied to the hub, for a group of messages at once: one batch read, one transaction.

A message is first checked on its own (:func:`check`: nothing read, nothing written). A group of
checked messages for different clients and ToewijzingNummers is then read with one search per
resource type (identifiers OR-ed) and written as one transaction Bundle holding every accepted
message's entries. Each message keeps its own outcome: one the hub state refuses (9332, 9074) gets
its findings and contributes no entry. What several messages share (the gemeente and provider
Organizations) is created once, and only when an accepted message needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.common.client import same_content
from adapters.gemeente import codes as c
from adapters.gemeente import fhir, rules
from adapters.gemeente.inbound import (
    Context,
    Entry,
    Outcome,
    Resource,
    _ident,
    _ident_query,
    _new_ref,
    _patient_bsn,
    _post,
    _put,
    _url,
    read_many,
)
from adapters.gemeente.messages import Header, Node
from adapters.gemeente.retour import Finding

#: Search results per page for a group's reads (the hub's page limit; a group stays far below it).
PAGE = 1000


@dataclass
class Checked:
    """A WMO301 that passed the message rules: what it needs from the hub."""

    header: Header
    client: Node
    products: list[Node]
    bsn: str
    numbers: list[str]
    network: str
    relaties: list[Node]
    relatie_keys: list[str]

    @property
    def keys(self) -> frozenset[str]:
        """What no other message may touch while this one is applied (its client and toewijzingen)."""
        return frozenset({f"bsn:{self.bsn}", f"msg:{self.header.key}", *(f"nr:{n}" for n in self.numbers)})


def check(ctx: Context, root: Node, header: Header) -> Checked | list[Finding]:
    """The rules a WMO301 must meet on its own; the findings, or the message ready to apply."""
    client = root.node("Client")
    assert client is not None  # noqa: S101 - the XSD requires it
    products = client.all("ToegewezenProducten/ToegewezenProduct")
    findings = rules.check_dagtekening(root.node("Header") or root, ctx.today) + rules.check_bsn(client)
    findings += rules.check_unique_numbers(products)
    for p in products:
        findings += rules.check_period(p, "Ingangsdatum", "Einddatum")
        findings += rules.check_product(p, ctx.catalogue)
        findings += rules.check_omvang(p)
    findings += rules.check_overlap(products)
    if findings:
        return findings
    bsn = client.text("Bsn") or ""
    relaties = client.all("Relaties/Relatie")
    return Checked(
        header,
        client,
        products,
        bsn,
        [p.text("ToewijzingNummer") or "" for p in products],
        fhir.network_key(ctx.settings.gemeente_code, bsn),
        relaties,
        [f"{bsn}-{r.text('Nummer')}" for r in relaties],
    )


@dataclass
class _Held:
    """What the hub holds for a group, by identifier."""

    patients: dict[str | None, Resource]
    requests: dict[str | None, Resource]
    subjects: list[Resource]
    plans: dict[str | None, Resource]
    teams: dict[str | None, Resource]
    relaties: set[str | None]


def _any_of(system: str, values: list[str]) -> str:
    return ",".join(f"{system}|{v}" for v in values)


async def _read(ctx: Context, group: list[Checked]) -> _Held:
    numbers = [n for m in group for n in m.numbers]
    relatie_keys = [k for m in group for k in m.relatie_keys]
    count = ("_count", str(PAGE))
    urls = [
        _url("Patient", [("identifier", _any_of(c.BSN_SYSTEM, [m.bsn for m in group])), count]),
        _url(
            "ServiceRequest",
            [("identifier", _any_of(c.TOEWIJZING_SYSTEM, numbers)), ("_include", "ServiceRequest:subject"), count],
        ),
        _url("CarePlan", [("identifier", _any_of(c.TOEWIJZING_SYSTEM, numbers)), count]),
        _url("CareTeam", [("identifier", _any_of(c.NETWERK_SYSTEM, [m.network for m in group])), count]),
    ]
    if relatie_keys:
        urls.append(_url("RelatedPerson", [("identifier", _any_of(c.RELATIE_SYSTEM, relatie_keys)), count]))
    s = ctx.settings
    org_keys = sorted({f"{c.URA_SYSTEM}|{s.ura}", *(f"{c.AGB_SYSTEM}|{m.header.ontvanger}" for m in group)})
    missing = [k for k in org_keys if k not in ctx.organisations]
    results = await read_many(ctx.hub, urls + [_url("Organization", [("identifier", k)]) for k in missing])
    patients, srs, plans, teams = results[:4]
    for k, found in zip(missing, results[len(urls) :], strict=True):
        if found:  # an Organization with a URA is the one care relationships can be derived from
            ctx.organisations[k] = sorted(found, key=lambda o: _ident(o, c.URA_SYSTEM) is None)[:1]
    return _Held(
        patients={_ident(p, c.BSN_SYSTEM): p for p in patients},
        requests={_ident(r, c.TOEWIJZING_SYSTEM): r for r in srs if r["resourceType"] == "ServiceRequest"},
        subjects=[r for r in srs if r["resourceType"] == "Patient"],
        plans={_ident(r, c.TOEWIJZING_SYSTEM): r for r in plans},
        teams={_ident(t, c.NETWERK_SYSTEM): t for t in teams},
        relaties={_ident(r, c.RELATIE_SYSTEM) for r in results[4]} if relatie_keys else set(),
    )


@dataclass
class _Shared:
    """Organizations the group creates: one entry each, sent only when an accepted message needs it."""

    entries: dict[str, tuple[str, Entry]] = field(default_factory=dict)
    needed: set[str] = field(default_factory=set)

    def ensure(self, ctx: Context, resource: Resource, system: str, value: str, used: set[str]) -> str:
        key = f"{system}|{value}"
        found = ctx.organisations.get(key)
        if found:
            return f"{found[0]['resourceType']}/{found[0]['id']}"
        if key not in self.entries:
            full = _new_ref()
            self.entries[key] = (full, _post(full, resource, _ident_query(system, value)))
        used.add(key)
        return self.entries[key][0]


def _build(ctx: Context, m: Checked, held: _Held, shared: _Shared) -> tuple[list[Finding], list[Entry], set[str]]:
    """One message's entries (or its findings) against what the hub holds."""
    s, agb, bsn = ctx.settings, m.header.ontvanger, m.bsn
    used: set[str] = set()
    entries: list[Entry] = []
    gemeente_ref = shared.ensure(
        ctx, fhir.gemeente_organization(s.ura, s.gemeente_code, s.name), c.URA_SYSTEM, s.ura, used
    )
    provider_ref = shared.ensure(ctx, fhir.provider_organization(agb), c.AGB_SYSTEM, agb, used)
    patient = held.patients.get(bsn)
    if patient is not None:
        patient_ref = f"Patient/{patient['id']}"
    else:
        patient_ref = _new_ref()
        entries.append(_post(patient_ref, fhir.patient(m.client), _ident_query(c.BSN_SYSTEM, bsn)))
    team = held.teams.get(m.network)
    team_ref = f"CareTeam/{team['id']}" if team else _new_ref()
    findings: list[Finding] = []
    wanted: list[tuple[Resource, Resource | None, Resource | None]] = []
    for p, nummer in zip(m.products, m.numbers, strict=True):
        current = held.requests.get(nummer)
        plan = held.plans.get(nummer)
        plan_ref = f"CarePlan/{plan['id']}" if plan else _new_ref()
        sr = fhir.toewijzing(p, patient_ref, gemeente_ref, provider_ref, agb, plan_ref)
        if current is not None:
            if _patient_bsn(held.subjects, (current.get("subject") or {}).get("reference")) != bsn:
                findings.append(Finding("9332", f"ToewijzingNummer {nummer} belongs to another client", p.el))
                continue
            was, new = fhir.parse_instant(current.get("authoredOn")), fhir.parse_instant(sr["authoredOn"])
            if was and new and was > new:
                findings.append(
                    Finding(
                        "9074",
                        f"toewijzing {nummer}: the hub holds a newer allocation "
                        f"({current.get('authoredOn')}); this one ({sr['authoredOn']}) is older",
                        p.el,
                    )
                )
                continue
            if was == new and not same_content(
                current,
                {
                    **sr,
                    "subject": current.get("subject"),
                    "requester": current.get("requester"),
                    "performer": current.get("performer"),
                    "basedOn": current.get("basedOn"),
                },
            ):
                findings.append(
                    Finding(
                        "9074",
                        f"toewijzing {nummer}: a different allocation with the same "
                        f"moment ({sr['authoredOn']}) was received before",
                        p.el,
                    )
                )
                continue
        wanted.append((sr, plan, current))
    if findings:
        return findings, [], set()
    for sr, plan, current in wanted:
        nummer = sr["identifier"][0]["value"]
        plan_res = fhir.careplan(sr, patient_ref, gemeente_ref, team_ref, plan)
        if plan is None:
            entries.append(_post(sr["basedOn"][0]["reference"], plan_res, _ident_query(c.TOEWIJZING_SYSTEM, nummer)))
        elif not same_content(plan, plan_res):
            entries.append(_put(plan, plan_res))
        if current is None:
            entries.append(_post(_new_ref(), sr, _ident_query(c.TOEWIJZING_SYSTEM, nummer)))
        elif not same_content(current, sr):
            entries.append(_put(current, sr))
    periods = [(provider_ref, sr["occurrencePeriod"]) for sr, _, _ in wanted]
    team_res = fhir.careteam(patient_ref, gemeente_ref, periods, team, m.network)
    if team is None:
        entries.append(_post(team_ref, team_res, _ident_query(c.NETWERK_SYSTEM, m.network)))
    elif not same_content(team, team_res):
        entries.append(_put(team, team_res))
    vertegenwoordiging = m.client.text("WettelijkeVertegenwoordiging")
    for relatie, key in zip(m.relaties, m.relatie_keys, strict=True):
        if key not in held.relaties:  # a contact person is created once; the client's network keeps it
            rp = fhir.related_person(relatie, bsn, patient_ref, vertegenwoordiging)
            entries.append(_post(_new_ref(), rp, _ident_query(c.RELATIE_SYSTEM, key)))
    return [], entries, used


async def apply(ctx: Context, group: list[Checked]) -> list[Outcome]:
    """Apply a group of checked WMO301s (different clients, different ToewijzingNummers) in one
    transaction; each message's outcome, in order. A hub error refuses the whole transaction (nothing
    is written) and is raised: the caller then applies the messages one by one to find the culprit."""
    held = await _read(ctx, group)
    shared = _Shared()
    outcomes: list[Outcome] = []
    entries: list[Entry] = []
    for m in group:
        findings, own, used = _build(ctx, m, held, shared)
        if findings:
            outcomes.append(Outcome(findings))
            continue
        shared.needed |= used
        entries += own
        outcomes.append(Outcome(writes=len(own)))
    organisations = [entry for key, (_full, entry) in shared.entries.items() if key in shared.needed]
    if organisations or entries:
        await ctx.hub.transaction(organisations + entries)
    return outcomes
