"""Outbound: the provider's start and stop of care and its requests for a toewijzing, from the hub.

The adapter polls the hub (``_lastUpdated``): a toewijzing's care plan activity that became
``in-progress`` gives a WMO305 (start zorg), one that ended (``completed``/``stopped``/``on-hold``)
a WMO307 (stop zorg, RedenBeeindiging from its statusReason); a ServiceRequest ``intent=proposal``
written in the hub gives a WMO315 (verzoek om toewijzing). Every message is XSD-validated before it is
written. What was sent is remembered by a mark per fact, and a message's identification and file
name derive from that mark, so a crash between writing and remembering rewrites the same file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from adapters.common.client import HubClient
from adapters.gemeente import codes as c
from adapters.gemeente import fhir, schemas
from adapters.gemeente.config import GemeenteSettings
from adapters.gemeente.inbound import read_many
from adapters.gemeente.messages import BERICHT_CODE
from adapters.gemeente.state import State

log = logging.getLogger("adapter.gemeente.outbound")
Resource = dict[str, Any]
#: Re-read this far behind the cursor: writes committed late still get seen (marks dedupe).
OVERLAP = dt.timedelta(seconds=10)


@dataclass(frozen=True)
class Written:
    number: str
    path: Path
    mark: str


class MessageBuilder:
    """An iWmo message element tree in namespace wmo``number``."""

    def __init__(self, number: str) -> None:
        self.number = number
        self.ns = schemas.namespace(number)
        self.root = etree.Element(self.q("Bericht"), nsmap={f"wmo{number}": self.ns, "iwmo": schemas.BASIS_NS})

    def q(self, local: str) -> str:
        return f"{{{self.ns}}}{local}"

    @staticmethod
    def b(local: str) -> str:
        return f"{{{schemas.BASIS_NS}}}{local}"

    def add(self, parent: etree._Element, local: str, text: str | None = None, basis: bool = False) -> etree._Element:
        el = etree.SubElement(parent, self.b(local) if basis else self.q(local))
        if text is not None:
            el.text = text
        return el

    def header(self, afzender: str, ontvanger: str, identificatie: str, today: dt.date) -> None:
        h = self.add(self.root, "Header")
        self.add(h, "BerichtCode", BERICHT_CODE[self.number])
        self.add(h, "BerichtVersie", "3")
        self.add(h, "BerichtSubversie", "2")
        self.add(h, "Afzender", afzender)
        self.add(h, "Ontvanger", ontvanger)
        ident = self.add(h, "BerichtIdentificatie")
        self.add(ident, "Identificatie", identificatie, basis=True)
        self.add(ident, "Dagtekening", today.isoformat(), basis=True)
        versie = self.add(h, "XsdVersie")
        self.add(versie, "BasisschemaXsdVersie", "1.0.0", basis=True)
        self.add(versie, "BerichtXsdVersie", "1.0.0", basis=True)

    def client(self, patient: Resource) -> etree._Element:
        client = self.add(self.root, "Client")
        self.add(client, "Bsn", next(i["value"] for i in patient["identifier"] if i.get("system") == c.BSN_SYSTEM))
        born = self.add(client, "Geboortedatum")
        birth = patient.get("birthDate") or ""
        if len(birth) == 10:
            self.add(born, "Datum", birth, basis=True)
        elif len(birth) in (4, 7):
            self.add(born, "Datum", (birth + "-01-01")[:10] if len(birth) == 4 else birth + "-01", basis=True)
            self.add(born, "DatumGebruik", "2" if len(birth) == 4 else "1", basis=True)
        else:
            self.add(born, "Datum", "1900-01-01", basis=True)
            self.add(born, "DatumGebruik", "3", basis=True)
        self.add(client, "Geslacht", c.GESLACHT.get(patient.get("gender") or "unknown", "0"))
        parts = fhir.short_name((patient.get("name") or [{}])[0])
        naam = self.add(client, "Naam")
        geslachtsnaam = self.add(naam, "Geslachtsnaam", basis=True)
        self.add(geslachtsnaam, "Achternaam", parts["Achternaam"] or "Onbekend", basis=True)
        if parts["Voorvoegsel"]:
            self.add(geslachtsnaam, "Voorvoegsel", parts["Voorvoegsel"], basis=True)
        if parts["Voornamen"]:
            self.add(naam, "Voornamen", parts["Voornamen"], basis=True)
        if parts["Voorletters"]:
            self.add(naam, "Voorletters", parts["Voorletters"], basis=True)
        return client

    def product(self, parent: etree._Element, sr: Resource) -> None:
        coding = next(iter(sr["code"].get("coding") or []), None)
        if coding is None:
            return
        product = self.add(parent, "Product")
        self.add(product, "Categorie", coding["code"], basis=True)
        extensions = sr["code"].get("extension") or []
        code = next((e["valueString"] for e in extensions if e["url"] == c.PRODUCTCODE_EXT), None)
        if code:
            self.add(product, "Code", code, basis=True)

    def omvang(self, parent: etree._Element, sr: Resource) -> None:
        q = sr.get("quantityQuantity")
        freq = next((e["valueCoding"]["code"] for e in sr.get("extension") or [] if e["url"] == c.FREQUENTIE_EXT), None)
        if not q or not freq:
            return
        omvang = self.add(parent, "Omvang")
        self.add(omvang, "Volume", str(int(q["value"])), basis=True)
        self.add(omvang, "Eenheid", q["code"], basis=True)
        self.add(omvang, "Frequentie", freq, basis=True)

    def bytes(self) -> bytes:
        return bytes(etree.tostring(self.root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _ident(res: Resource, system: str) -> str | None:
    return next((i.get("value") for i in res.get("identifier") or [] if i.get("system") == system), None)


def _by_ref(resources: Iterable[Resource]) -> dict[str, Resource]:
    return {f"{r['resourceType']}/{r['id']}": r for r in resources}


def identificatie_for(mark: str) -> str:
    """A message identification (max 12 characters) that follows from what the message reports."""
    return hashlib.sha256(mark.encode()).hexdigest()[:12].upper()


class Outbound:
    """Polls the hub and writes outbound messages into ``outbox``."""

    def __init__(self, hub: HubClient, state: State, settings: GemeenteSettings, outbox: Path) -> None:
        self.hub = hub
        self.state = state
        self.settings = settings
        self.outbox = outbox

    async def poll(self, today: dt.date | None = None) -> list[Written]:
        today = today or dt.date.today()
        self.outbox.mkdir(parents=True, exist_ok=True)
        written = await self._care(today)
        written += await self._proposals(today)
        return written

    def _since(self, name: str) -> list[tuple[str, str]]:
        cursor = self.state.cursor(name)
        if not cursor:
            return []
        moment = dt.datetime.fromisoformat(cursor.replace("Z", "+00:00")) - OVERLAP
        return [("_lastUpdated", "ge" + moment.strftime("%Y-%m-%dT%H:%M:%S") + "Z")]

    def _advance(self, name: str, resources: list[Resource]) -> None:
        stamps = [(r.get("meta") or {}).get("lastUpdated") for r in resources]
        latest = max((s for s in stamps if s), default=None)
        if latest:
            self.state.set_cursor(name, latest)

    async def _care(self, today: dt.date) -> list[Written]:
        params = [("identifier", f"{c.TOEWIJZING_SYSTEM}|"), ("_count", "100"), *self._since("careplan")]
        plans = await self.hub.search("CarePlan", params)
        events: list[tuple[str, str, Resource, str]] = []  # (number, mark, plan, nummer)
        for plan in plans:
            nummer = _ident(plan, c.TOEWIJZING_SYSTEM)
            detail = (plan.get("activity") or [{}])[0].get("detail") or {}
            status, period = detail.get("status"), detail.get("scheduledPeriod") or {}
            if not nummer or not period.get("start"):
                continue
            if status in ("in-progress", "completed", "stopped", "on-hold"):
                events.append(("305", f"305:{nummer}:{period['start']}", plan, nummer))
            if status in ("completed", "stopped", "on-hold") and period.get("end"):
                reden = next(iter((detail.get("statusReason") or {}).get("coding") or [{}])).get("code") or "19"
                events.append(("307", f"307:{nummer}:{period['end']}:{reden}", plan, nummer))
        todo = [e for e in events if not self.state.emitted(e[1])]
        written: list[Written] = []
        if todo:
            numbers = sorted({e[3] for e in todo})
            (found,) = await read_many(
                self.hub,
                [
                    "ServiceRequest?"
                    + _q(
                        [
                            ("identifier", ",".join(f"{c.TOEWIJZING_SYSTEM}|{n}" for n in numbers)),
                            ("_include", "ServiceRequest:subject"),
                            ("_include", "ServiceRequest:performer"),
                        ]
                    ),
                ],
            )
            refs = _by_ref(found)
            srs = {_ident(r, c.TOEWIJZING_SYSTEM): r for r in found if r["resourceType"] == "ServiceRequest"}
            for number, mark, plan, nummer in todo:
                sr = srs.get(nummer)
                if sr is None:
                    continue
                out = self._start_stop(number, mark, plan, sr, refs, today)
                if out is not None:
                    written.append(out)
        self._advance("careplan", plans)
        return written

    def _start_stop(
        self, number: str, mark: str, plan: Resource, sr: Resource, refs: dict[str, Resource], today: dt.date
    ) -> Written | None:
        patient = refs.get(sr["subject"]["reference"])
        provider = refs.get((sr.get("performer") or [{}])[0].get("reference", ""))
        agb = _ident(provider, c.AGB_SYSTEM) if provider else None
        if patient is None or agb is None:
            log.warning("%s: no client or provider AGB readable for toewijzing; not sent", mark)
            return None
        detail = plan["activity"][0]["detail"]
        period = detail["scheduledPeriod"]
        m = MessageBuilder(number)
        m.header(agb, self.settings.gemeente_code, identificatie_for(mark), today)
        client = m.client(patient)
        items = m.add(client, "StartProducten" if number == "305" else "StopProducten")
        item = m.add(items, "StartProduct" if number == "305" else "StopProduct")
        m.add(item, "ToewijzingNummer", _ident(sr, c.TOEWIJZING_SYSTEM))
        m.product(item, sr)
        m.add(item, "ToewijzingIngangsdatum", sr["occurrencePeriod"]["start"][:10])
        m.add(item, "Begindatum", period["start"][:10])
        if number == "307":
            reden = next(iter((detail.get("statusReason") or {}).get("coding") or [{}])).get("code") or "19"
            m.add(item, "RedenBeeindiging", reden)
            m.add(item, "Einddatum", period["end"][:10])
        m.add(item, "StatusAanlevering", "1")
        return self._write(m, mark, agb)

    async def _proposals(self, today: dt.date) -> list[Written]:
        params = [
            ("intent", "proposal"),
            ("status", "active"),
            ("_count", "100"),
            ("_include", "ServiceRequest:subject"),
            ("_include", "ServiceRequest:performer"),
            *self._since("proposal"),
        ]
        found = await self.hub.search("ServiceRequest", params)
        refs = _by_ref(found)
        proposals = [r for r in found if r["resourceType"] == "ServiceRequest"]
        written: list[Written] = []
        for sr in proposals:
            mark = f"315:{sr['id']}"
            if _ident(sr, c.VERZOEK_PRODUCT_SYSTEM) or self.state.emitted(mark):
                continue  # came in as an iWmo request, or already sent
            patient = refs.get(sr["subject"]["reference"])
            provider = refs.get((sr.get("performer") or [{}])[0].get("reference", ""))
            agb = _ident(provider, c.AGB_SYSTEM) if provider else None
            start = (sr.get("occurrencePeriod") or {}).get("start")
            if patient is None or agb is None or not start:
                log.warning("%s: proposal without readable client, provider AGB or start; not sent", mark)
                continue
            m = MessageBuilder("315")
            m.header(agb, self.settings.gemeente_code, identificatie_for(mark), today)
            client = m.client(patient)
            products = m.add(client, "AangevraagdeProducten")
            item = m.add(products, "AangevraagdProduct")
            m.add(item, "ReferentieAanbieder", sr["id"][:36])
            m.product(item, sr)
            m.add(item, "ToewijzingIngangsdatum", start[:10])
            if (sr.get("occurrencePeriod") or {}).get("end"):
                m.add(item, "ToewijzingEinddatum", sr["occurrencePeriod"]["end"][:10])
            m.omvang(item, sr)
            verwijzer = m.add(item, "Verwijzer")
            m.add(verwijzer, "Type", "06", basis=True)
            note = "; ".join(n.get("text", "") for n in sr.get("note") or [])
            if note:
                m.add(item, "Commentaar", note[:1000])
            out = self._write(m, mark, agb)
            if out is not None:
                written.append(out)
        self._advance("proposal", proposals)
        return written

    def _write(self, m: MessageBuilder, mark: str, agb: str) -> Written | None:
        data = m.bytes()
        errors = schemas.validate(m.number, etree.fromstring(data))
        if errors:
            log.error("%s: WMO%s would not be XSD-valid, not sent: %s", mark, m.number, errors[:3])
            return None
        ident = identificatie_for(mark)
        path = self.outbox / f"WMO{m.number}_{ident}.xml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.state.record_sent(f"{m.number}:{agb}:{ident}", m.number, mark, path.name, [mark])
        return Written(m.number, path, mark)


def _q(params: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)
