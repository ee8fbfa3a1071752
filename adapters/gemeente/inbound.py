"""Inbound heen messages applied to the hub: one read (a batch) and at most one transaction each.

Every handler checks first and writes only when nothing is wrong, so a refused message changes
nothing. Writes are idempotent: conditional creates by identifier, version-checked updates only
where the content differs. A message older than what the hub holds is refused (9074), never applied.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from adapters.common.client import HubClient, same_content
from adapters.gemeente import codes as c
from adapters.gemeente import fhir, rules
from adapters.gemeente.config import Catalogue, GemeenteSettings
from adapters.gemeente.messages import Header, Node
from adapters.gemeente.retour import Finding

Resource = dict[str, Any]
#: One entry of a transaction Bundle.
Entry = dict[str, Any]


@dataclass
class Context:
    hub: HubClient
    settings: GemeenteSettings
    catalogue: Catalogue
    today: dt.date
    #: Organizations found in the hub, by ``system|value`` (they are registry data: kept per process).
    organisations: dict[str, list[Resource]] = field(default_factory=dict)


@dataclass
class Outcome:
    """What a handler found (empty: applied) and the marks of hub facts it created (start/stop)."""

    findings: list[Finding] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    writes: int = 0


def _url(res_type: str, params: Sequence[tuple[str, str]]) -> str:
    return f"{res_type}?{urlencode(params)}"


async def read_many(hub: HubClient, urls: list[str]) -> list[list[Resource]]:
    """Several searches in one batch round trip; each result is a list of resources (includes too)."""
    response = await hub.batch([{"request": {"method": "GET", "url": u}} for u in urls])
    out: list[list[Resource]] = []
    for entry in response.get("entry") or []:
        status = str((entry.get("response") or {}).get("status", ""))
        if not status.startswith("200"):
            raise RuntimeError(f"hub search failed: {status} {entry.get('response')}")
        bundle = entry.get("resource") or {}
        out.append([e["resource"] for e in bundle.get("entry") or []])
    return out


def _ident(res: Resource, system: str) -> str | None:
    return next((i.get("value") for i in res.get("identifier") or [] if i.get("system") == system), None)


def _new_ref() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _post(full_url: str, resource: Resource, if_none_exist: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": full_url, "resource": resource, "request": request}


def _put(current: Resource, resource: Resource) -> dict[str, Any]:
    body = {**resource, "id": current["id"]}
    request = {"method": "PUT", "url": f"{resource['resourceType']}/{current['id']}"}
    version = (current.get("meta") or {}).get("versionId")
    if version:
        request["ifMatch"] = f'W/"{version}"'
    return {"resource": body, "request": request}


def _ident_query(system: str, value: str) -> str:
    return urlencode({"identifier": f"{system}|{value}"})


class Refs:
    """References to resources that exist (``Type/id``) or are created in this transaction."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def ensure(self, found: list[Resource], resource: Resource, system: str, value: str) -> str:
        if found:
            return f"{found[0]['resourceType']}/{found[0]['id']}"
        full = _new_ref()
        self.entries.append(_post(full, resource, _ident_query(system, value)))
        return full

    def write(self, current: Resource | None, resource: Resource, system: str, value: str) -> str:
        """Create (conditionally) or update when changed; the reference either way."""
        if current is None:
            full = _new_ref()
            self.entries.append(_post(full, resource, _ident_query(system, value)))
            return full
        if not same_content(current, resource):
            self.entries.append(_put(current, resource))
        return f"{resource['resourceType']}/{current['id']}"


def _patient_bsn(patients: list[Resource], ref: str | None) -> str | None:
    for p in patients:
        if f"Patient/{p['id']}" == ref:
            return _ident(p, c.BSN_SYSTEM)
    return None


# -- WMO305 start zorg / WMO307 stop zorg ----------------------------------------------------------

STARTED = frozenset({"in-progress", "completed", "on-hold", "stopped"})
ENDED = frozenset({"completed", "stopped", "on-hold"})


Found = tuple[dict[str | None, Resource], dict[str | None, Resource], list[Resource]]


async def _toewijzingen(ctx: Context, numbers: list[str]) -> Found:
    query = ",".join(f"{c.TOEWIJZING_SYSTEM}|{n}" for n in numbers if n)
    srs, plans = await read_many(
        ctx.hub,
        [
            _url("ServiceRequest", [("identifier", query), ("_include", "ServiceRequest:subject")]),
            _url("CarePlan", [("identifier", query)]),
        ],
    )
    by_sr = {_ident(r, c.TOEWIJZING_SYSTEM): r for r in srs if r["resourceType"] == "ServiceRequest"}
    by_plan = {_ident(r, c.TOEWIJZING_SYSTEM): r for r in plans}
    return by_sr, by_plan, [r for r in srs if r["resourceType"] == "Patient"]


def _within(day: dt.date, period: Resource) -> bool:
    lo = dt.date.fromisoformat(period["start"][:10]) if period.get("start") else dt.date.min
    hi = dt.date.fromisoformat(period["end"][:10]) if period.get("end") else dt.date.max
    return lo <= day <= hi


async def start_stop(ctx: Context, root: Node, header: Header, stop: bool) -> Outcome:
    client = root.node("Client")
    assert client is not None  # noqa: S101
    items = client.all("StopProducten/StopProduct" if stop else "StartProducten/StartProduct")
    findings = rules.check_dagtekening(root.node("Header") or root, ctx.today) + rules.check_bsn(client)
    for item in items:
        if stop:
            findings += rules.check_period(item, "Begindatum", "Einddatum")
    if findings:
        return Outcome(findings)
    bsn = client.text("Bsn")
    numbers = [item.text("ToewijzingNummer") or "" for item in items]
    by_sr, by_plan, patients = await _toewijzingen(ctx, numbers)
    entries: list[dict[str, Any]] = []
    marks: list[str] = []
    for item, nummer in zip(items, numbers, strict=True):
        sr, plan = by_sr.get(nummer), by_plan.get(nummer)
        if not nummer or sr is None or plan is None or _patient_bsn(patients, sr["subject"]["reference"]) != bsn:
            what = nummer or "(no ToewijzingNummer)"
            findings.append(Finding("9019", f"no toewijzing {what} for this client", item.el))
            continue
        begin = item.date("Begindatum") or dt.date.min
        status = item.text("StatusAanlevering")
        detail = dict(plan["activity"][0]["detail"])
        old_status = detail.get("status")
        scheduled = dict(detail.get("scheduledPeriod") or {})
        if not _within(begin, sr["occurrencePeriod"]):
            findings.append(Finding("9307", f"Begindatum {begin} lies outside toewijzing {nummer}", item.el))
            continue
        new_sr = None
        if not stop:
            if status == "3":
                if old_status in ENDED:
                    findings.append(Finding("9071", f"care for {nummer} has already ended", item.el))
                    continue
                detail["status"] = "not-started"
                scheduled.pop("start", None)
            else:
                if old_status in ENDED:
                    findings.append(
                        Finding("9074", f"toewijzing {nummer}: a stop was received before this start", item.el)
                    )
                    continue
                if status == "1" and old_status == "in-progress" and scheduled.get("start") != begin.isoformat():
                    findings.append(
                        Finding(
                            "9326",
                            f"toewijzing {nummer}: care started {scheduled.get('start')} has not been stopped",
                            item.el,
                        )
                    )
                    continue
                detail["status"] = "in-progress"
                scheduled["start"] = begin.isoformat()
                marks.append(f"305:{nummer}:{begin.isoformat()}")
        else:
            einde = item.date("Einddatum") or dt.date.max
            reden = item.text("RedenBeeindiging") or ""
            if not _within(einde, sr["occurrencePeriod"]):
                findings.append(Finding("9308", f"Einddatum {einde} lies outside toewijzing {nummer}", item.el))
                continue
            if old_status not in STARTED:
                # A stop needs a start; the stop's Begindatum is taken as the delivery's (the iWmo
                # examples themselves stop 300202 with another Begindatum than they started it).
                findings.append(Finding("9069", f"toewijzing {nummer}: no start of care was received", item.el))
                continue
            if (
                status == "1"
                and old_status in ENDED
                and (scheduled.get("end") != einde.isoformat() or _reason(detail) != reden)
            ):
                findings.append(Finding("9415", f"toewijzing {nummer}: a stop was received before", item.el))
                continue
            if status == "3":
                detail["status"] = "in-progress"
                scheduled.pop("end", None)
                detail.pop("statusReason", None)
                new_sr = {**sr, "status": "active"}
            else:
                detail["status"] = "on-hold" if reden == "20" else "completed"
                scheduled["start"] = begin.isoformat()
                scheduled["end"] = einde.isoformat()
                detail["statusReason"] = {
                    "coding": [
                        {
                            "system": c.REDEN_BEEINDIGING_SYSTEM,
                            "code": reden,
                            "display": c.display("LDT_RedenBeeindiging", reden),
                        }
                    ]
                }
                period = {**sr["occurrencePeriod"], "end": einde.isoformat()}
                new_sr = {**sr, "status": "on-hold" if reden == "20" else "completed", "occurrencePeriod": period}
                marks.append(f"307:{nummer}:{einde.isoformat()}:{reden}")
        if scheduled:
            detail["scheduledPeriod"] = scheduled
        else:
            detail.pop("scheduledPeriod", None)
        new_plan = {**plan, "activity": [{**plan["activity"][0], "detail": detail}]}
        if not same_content(plan, new_plan):
            entries.append(_put(plan, new_plan))
        if new_sr is not None and not same_content(sr, new_sr):
            entries.append(_put(sr, new_sr))
    if findings:
        return Outcome(findings)
    if entries:
        await ctx.hub.transaction(entries)
    return Outcome(marks=marks, writes=len(entries))


def _reason(detail: Resource) -> str | None:
    return next(iter((detail.get("statusReason") or {}).get("coding") or [{}])).get("code")


# -- WMO315 verzoek om toewijzing / WMO317 verzoek om wijziging / WMO319 antwoord ----------------


def _proposal(
    key: str,
    requisition: str,
    patient_ref: str,
    provider_ref: str,
    code: Resource,
    period: Resource,
    quantity: Resource | None,
    frequentie: Resource | None,
    notes: list[str],
    replaces: str | None = None,
    reason: Resource | None = None,
) -> Resource:
    res: Resource = {"resourceType": "ServiceRequest"}
    if frequentie:
        res["extension"] = [frequentie]
    res |= {
        "identifier": [{"system": c.VERZOEK_PRODUCT_SYSTEM, "value": key}],
        "requisition": {"system": c.VERZOEK_SYSTEM, "value": requisition},
        "status": "active",
        "intent": "proposal",
        "code": code,
    }
    if quantity:
        res["quantityQuantity"] = quantity
    res |= {
        "subject": fhir.ref(patient_ref),
        "occurrencePeriod": {k: v for k, v in period.items() if v},
        "requester": fhir.ref(provider_ref),
        "performer": [fhir.ref(provider_ref)],
    }
    if replaces:
        res["replaces"] = [fhir.ref(replaces)]
    if reason:
        res["reasonCode"] = [reason]
    if notes:
        res["note"] = [{"text": n} for n in notes]
    return res


async def verzoek_315(ctx: Context, root: Node, header: Header) -> Outcome:
    client = root.node("Client")
    assert client is not None  # noqa: S101
    products = client.all("AangevraagdeProducten/AangevraagdProduct")
    findings = rules.check_dagtekening(root.node("Header") or root, ctx.today) + rules.check_bsn(client)
    for p in products:
        findings += rules.check_period(p, "ToewijzingIngangsdatum", "ToewijzingEinddatum")
        findings += rules.check_product(p, ctx.catalogue)
    if findings:
        return Outcome(findings)
    bsn, agb = client.text("Bsn") or "", header.afzender
    keys = [f"{agb}/{p.text('ReferentieAanbieder')}" for p in products]
    patients, providers, proposals = await read_many(
        ctx.hub,
        [
            _url("Patient", [("identifier", f"{c.BSN_SYSTEM}|{bsn}")]),
            _url("Organization", [("identifier", f"{c.AGB_SYSTEM}|{agb}")]),
            _url("ServiceRequest", [("identifier", ",".join(f"{c.VERZOEK_PRODUCT_SYSTEM}|{k}" for k in keys))]),
        ],
    )
    held = {_ident(r, c.VERZOEK_PRODUCT_SYSTEM): r for r in proposals}
    refs = Refs()
    patient_ref = refs.ensure(patients, fhir.patient(client), c.BSN_SYSTEM, bsn)
    provider_ref = refs.ensure(providers, fhir.provider_organization(agb), c.AGB_SYSTEM, agb)
    for p, key in zip(products, keys, strict=True):
        quantity, frequentie = fhir.omvang(p.node("Omvang"))
        verwijzer = c.display("LDT_TypeVerwijzer", p.text("Verwijzer/Type"))
        notes = [
            n
            for n in (
                p.text("Commentaar"),
                client.text("Commentaar"),
                f"Verwijzer: {verwijzer} {p.text('Verwijzer/Naam') or ''}".strip(),
                f"BeschikkingNummer {p.text('BeschikkingNummer')}" if p.text("BeschikkingNummer") else None,
            )
            if n
        ]
        code = (
            fhir.product_code(p.text("Product/Categorie") or "", p.text("Product/Code"))
            if p.node("Product") is not None
            else {"text": "Wmo-ondersteuning (budget)"}
        )
        period = {"start": p.text("ToewijzingIngangsdatum"), "end": p.text("ToewijzingEinddatum")}
        proposal = _proposal(key, key, patient_ref, provider_ref, code, period, quantity, frequentie, notes)
        current = held.get(key)
        if current is not None and not same_content(
            current,
            {
                **proposal,
                "subject": current.get("subject"),
                "requester": current.get("requester"),
                "performer": current.get("performer"),
            },
        ):
            findings.append(
                Finding(
                    "9347",
                    f"ReferentieAanbieder {p.text('ReferentieAanbieder')} was used before for a different request",
                    p.el,
                )
            )
            continue
        if current is None:
            refs.entries.append(_post(_new_ref(), proposal, _ident_query(c.VERZOEK_PRODUCT_SYSTEM, key)))
    if findings:
        return Outcome(findings)
    if refs.entries:
        await ctx.hub.transaction(refs.entries)
    return Outcome(writes=len(refs.entries))


async def wijziging_317(ctx: Context, root: Node, header: Header) -> Outcome:
    client = root.node("Client")
    verzoek = root.node("Client/Verzoek")
    assert client is not None and verzoek is not None  # noqa: S101
    findings = rules.check_dagtekening(root.node("Header") or root, ctx.today) + rules.check_bsn(client)
    ongewijzigd = verzoek.all("OngewijzigdeProducten/OngewijzigdProduct")
    te_wijzigen = verzoek.all("TeWijzigenProducten/TeWijzigenProduct")
    nieuw = verzoek.all("NieuweProducten/NieuwProduct")
    for p in te_wijzigen + nieuw:
        findings += rules.check_period(p, "GewensteIngangsdatum", "Einddatum")
    for p in nieuw:
        findings += rules.check_product(p, ctx.catalogue)
    if findings:
        return Outcome(findings)
    bsn, agb = client.text("Bsn") or "", header.afzender
    requisition = f"{agb}/{verzoek.text('ReferentieAanbieder')}"
    numbers = [p.text("ToewijzingNummer") or "" for p in ongewijzigd + te_wijzigen]
    srs, patients, providers, proposals = await read_many(
        ctx.hub,
        [
            _url(
                "ServiceRequest",
                [
                    ("identifier", ",".join(f"{c.TOEWIJZING_SYSTEM}|{n}" for n in numbers) or "-"),
                    ("_include", "ServiceRequest:subject"),
                ],
            ),
            _url("Patient", [("identifier", f"{c.BSN_SYSTEM}|{bsn}")]),
            _url("Organization", [("identifier", f"{c.AGB_SYSTEM}|{agb}")]),
            _url("ServiceRequest", [("requisition", f"{c.VERZOEK_SYSTEM}|{requisition}"), ("intent", "proposal")]),
        ],
    )
    included = [r for r in srs if r["resourceType"] == "Patient"]
    by_number = {_ident(r, c.TOEWIJZING_SYSTEM): r for r in srs if r["resourceType"] == "ServiceRequest"}
    if not patients:
        findings.append(Finding("9019", f"no client with Bsn {bsn} has a toewijzing", client.el))
        return Outcome(findings)
    for p, rule in [(p, "9350") for p in ongewijzigd] + [(p, "9351") for p in te_wijzigen]:
        sr = by_number.get(p.text("ToewijzingNummer"))
        if sr is None or _patient_bsn(included, sr["subject"]["reference"]) != bsn or sr.get("status") != "active":
            findings.append(
                Finding(
                    rule,
                    f"ToewijzingNummer {p.text('ToewijzingNummer')} is not a current toewijzing of this client",
                    p.el,
                )
            )
    if findings:
        return Outcome(findings)
    refs = Refs()
    patient_ref = f"Patient/{patients[0]['id']}"
    provider_ref = refs.ensure(providers, fhir.provider_organization(agb), c.AGB_SYSTEM, agb)
    reden = verzoek.text("RedenVerzoek") or ""
    reason = {
        "coding": [{"system": c.REDEN_VERZOEK_SYSTEM, "code": reden, "display": c.display("LDT_RedenVerzoek", reden)}]
    }
    wanted: list[Resource] = []
    for i, p in enumerate(te_wijzigen, 1):
        sr = by_number[p.text("ToewijzingNummer")]
        quantity, frequentie = fhir.omvang(p.node("Omvang"))
        if quantity is None:
            quantity = sr.get("quantityQuantity")
            frequentie = next((e for e in sr.get("extension") or [] if e["url"] == c.FREQUENTIE_EXT), None)
        period = {"start": p.text("GewensteIngangsdatum"), "end": p.text("Einddatum")}
        wanted.append(
            _proposal(
                f"{requisition}/W{i}",
                requisition,
                patient_ref,
                provider_ref,
                sr["code"],
                period,
                quantity,
                frequentie,
                [],
                replaces=f"ServiceRequest/{sr['id']}",
                reason=reason,
            )
        )
    for i, p in enumerate(nieuw, 1):
        quantity, frequentie = fhir.omvang(p.node("Omvang"))
        code = fhir.product_code(p.text("Product/Categorie") or "", p.text("Product/Code"))
        period = {"start": p.text("GewensteIngangsdatum"), "end": p.text("Einddatum")}
        wanted.append(
            _proposal(
                f"{requisition}/N{i}",
                requisition,
                patient_ref,
                provider_ref,
                code,
                period,
                quantity,
                frequentie,
                [],
                reason=reason,
            )
        )
    held = {_ident(r, c.VERZOEK_PRODUCT_SYSTEM): r for r in proposals}
    if held:
        same = len(held) == len(wanted) and all(
            k in held
            and same_content(
                held[k], {**w, "requester": held[k].get("requester"), "performer": held[k].get("performer")}
            )
            for w in wanted
            for k in [w["identifier"][0]["value"]]
        )
        if not same:
            return Outcome(
                [
                    Finding(
                        "9347",
                        f"ReferentieAanbieder {verzoek.text('ReferentieAanbieder')} was used "
                        "before for a different request",
                        verzoek.el,
                    )
                ]
            )
        return Outcome()
    for w in wanted:
        refs.entries.append(_post(_new_ref(), w, _ident_query(c.VERZOEK_PRODUCT_SYSTEM, w["identifier"][0]["value"])))
    await ctx.hub.transaction(refs.entries)
    return Outcome(writes=len(refs.entries))


ANSWERED = "Verzoek afgewezen"
INVESTIGATING = "Aanvraag in onderzoek"


async def antwoord_319(ctx: Context, root: Node, header: Header) -> Outcome:
    antwoord = root.node("Antwoord")
    assert antwoord is not None  # noqa: S101
    findings = rules.check_dagtekening(root.node("Header") or root, ctx.today)
    if findings:
        return Outcome(findings)
    referentie = antwoord.text("ReferentieAanbieder")
    requisition = f"{header.ontvanger}/{referentie}"
    (proposals,) = await read_many(
        ctx.hub,
        [
            _url("ServiceRequest", [("requisition", f"{c.VERZOEK_SYSTEM}|{requisition}"), ("intent", "proposal")]),
        ],
    )
    if not proposals:
        return Outcome(
            [
                Finding(
                    "9355",
                    f"no request of aanbieder {header.ontvanger} has ReferentieAanbieder {referentie}",
                    antwoord.el,
                )
            ]
        )
    code = antwoord.text("VerzoekAntwoord")
    reden = antwoord.text("RedenAfwijzingVerzoek")
    if code == "1":
        text = f"{ANSWERED}: {c.display('LDT_RedenAfwijzingVerzoek', reden) or 'geen reden'} ({reden or '-'})"
        status = "revoked"
    else:
        text = INVESTIGATING
        status = "active"
    entries = []
    for p in proposals:
        notes = [n for n in p.get("note") or [] if not str(n.get("text", "")).startswith((ANSWERED, INVESTIGATING))]
        answered = [n for n in p.get("note") or [] if str(n.get("text", "")).startswith(ANSWERED)]
        if answered and answered[-1]["text"] != text or (answered and code != "1"):
            return Outcome(
                [Finding("9365", f"request {referentie} was answered before ({answered[-1]['text']})", antwoord.el)]
            )
        new = {**p, "status": status, "note": [*notes, {"text": text}]}
        if not same_content(p, new):
            entries.append(_put(p, new))
    if entries:
        await ctx.hub.transaction(entries)
    return Outcome(writes=len(entries))


HANDLERS = {"315": verzoek_315, "317": wijziging_317, "319": antwoord_319}


async def handle(ctx: Context, number: str, root: Node, header: Header) -> Outcome:
    if number == "305":
        return await start_stop(ctx, root, header, stop=False)
    if number == "307":
        return await start_stop(ctx, root, header, stop=True)
    return await HANDLERS[number](ctx, root, header)
