"""One inbound message, start to end: parse safely, validate, check, apply, answer, remember.

The answer is remembered (by content hash) only after the hub has been written, so a crash in
between makes the message be processed again, which the idempotent writes turn into a no-op.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from adapters.common.client import HubClient
from adapters.common.errors import HubError, HubUnavailable, UnsafeXml
from adapters.common.xmlsafe import XmlLimits, parse_xml
from adapters.gemeente import schemas
from adapters.gemeente.config import Catalogue, GemeenteSettings
from adapters.gemeente.inbound import Context, handle
from adapters.gemeente.messages import HEEN_OF, RETOUR_OF, Node, message_number, read_header
from adapters.gemeente.retour import TECHNICAL as TECHNICAL_CODE
from adapters.gemeente.retour import Finding, build_retour, retour_codes
from adapters.gemeente.state import State

log = logging.getLogger("adapter.gemeente")

#: Statuses of a processed message.
ACCEPTED, REJECTED, TECHNICAL_REJECTED, ACKNOWLEDGED, UNREADABLE, NOT_MAPPED = (
    "accepted", "rejected", "technical", "acknowledged", "unreadable", "not-mapped",
)
#: How often a message is retried when the hub reports a concurrent change (412/409).
CONFLICT_RETRIES = 5


@dataclass
class Result:
    status: str
    number: str | None = None
    retour: bytes | None = None
    reasons: list[str] = field(default_factory=list)
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.status in (ACCEPTED, ACKNOWLEDGED, NOT_MAPPED)


class Processor:
    """Processes inbound messages against one hub with one state file."""

    def __init__(self, hub: HubClient, state: State, settings: GemeenteSettings,
                 catalogue: Catalogue | None = None) -> None:
        self.hub = hub
        self.state = state
        self.settings = settings
        self.catalogue = catalogue or Catalogue.load(settings.products)
        self.limits = XmlLimits(max_bytes=settings.max_message_bytes)
        self._locks: dict[str, asyncio.Lock] = {}
        self._organisations: dict[str, list[dict[str, Any]]] = {}

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def process(self, data: bytes) -> Result:
        content_hash = hashlib.sha256(data).hexdigest()
        seen = self.state.received(content_hash)
        if seen is not None:
            return Result(seen.status, seen.number, seen.retour, [r for r in seen.reasons.split("\n") if r],
                          replayed=True)
        try:
            root = parse_xml(data, self.limits)
        except UnsafeXml as exc:
            return Result(UNREADABLE, reasons=[str(exc)])
        number = message_number(root)
        if number is None:
            return Result(UNREADABLE, reasons=["not an iWmo 3.2 message (root must be wmoNNN:Bericht)"])
        try:
            errors = schemas.validate(number, root)
        except KeyError:
            return Result(UNREADABLE, number, reasons=[f"WMO{number} is not a message this adapter knows"])
        if errors:
            return self._technical(content_hash, root, number, errors)
        node = Node(root)
        header = read_header(number, node)
        if number in HEEN_OF:
            return self._acknowledge(content_hash, root, number, header.key)
        if number not in RETOUR_OF:
            reasons = [f"WMO{number} is validated but not mapped to the hub by this adapter"]
            self.state.record(content_hash, header.key, number, NOT_MAPPED, None, "\n".join(reasons))
            return Result(NOT_MAPPED, number, reasons=reasons)
        known = self.state.key_hash(header.key)
        if known is not None and known != content_hash:
            finding = Finding("9056", f"BerichtIdentificatie {header.identificatie} of {header.afzender} was used "
                              "before for a different message", None)
            return self._answer(content_hash, root, number, None, [finding])
        lock_key = node.text("Client/Bsn") or node.text("Antwoord/ReferentieAanbieder") or header.key
        async with self._lock(lock_key):
            for attempt in range(1, CONFLICT_RETRIES + 1):
                ctx = Context(self.hub, self.settings, self.catalogue, dt.date.today(), self._organisations)
                try:
                    outcome = await handle(ctx, number, node, header)
                    break
                except HubUnavailable:
                    raise  # transient: the transport keeps the message and offers it again
                except HubError as exc:
                    if exc.status in (409, 412) and attempt < CONFLICT_RETRIES:
                        log.info("WMO%s %s: concurrent change in the hub, again (%s)", number, header.key, exc)
                        continue
                    # The hub refused what the message maps to (4xx): nothing was applied; say so
                    # rather than offering the message again forever.
                    log.error("WMO%s %s: the hub refused it: %s", number, header.key, exc)
                    refused = Finding(TECHNICAL_CODE, f"the hub refused the message: {exc}", None)
                    return self._answer(content_hash, root, number, None, [refused])
        if not outcome.findings and outcome.marks:
            self.state.record_sent(f"in:{header.key}", number, "inbound", None, outcome.marks)
        return self._answer(content_hash, root, number, header.key, outcome.findings)

    def _retour_id(self) -> str:
        return f"R{self.state.next_number('retour'):011d}"

    def _technical(self, content_hash: str, root: etree._Element, number: str, errors: list[str]) -> Result:
        reasons = [f"XSD WMO{number}: {e}" for e in errors[:20]]
        retour = None
        if number in RETOUR_OF:
            retour = build_retour(root, number, [], identificatie=self._retour_id(), today=dt.date.today(),
                                  technical=True)
            if schemas.validate(RETOUR_OF[number], etree.fromstring(retour)):
                retour = None  # the header itself is broken: no valid retour can echo it
        self.state.record(content_hash, None, number, TECHNICAL_REJECTED, retour, "\n".join(reasons))
        return Result(TECHNICAL_REJECTED, number, retour, reasons)

    def _answer(self, content_hash: str, root: etree._Element, number: str, key: str | None,
                findings: list[Finding]) -> Result:
        retour = build_retour(root, number, findings, identificatie=self._retour_id(), today=dt.date.today())
        reasons = [f"{f.code}: {f.reason}" for f in findings]
        status = REJECTED if findings else ACCEPTED
        self.state.record(content_hash, key if not findings else None, number, status, retour, "\n".join(reasons))
        return Result(status, number, retour, reasons)

    def _acknowledge(self, content_hash: str, root: etree._Element, number: str, key: str) -> Result:
        heen = HEEN_OF[number]
        node = Node(root)
        heen_key = f"{heen}:{node.text('Header/Afzender')}:{node.text('Header/BerichtIdentificatie/Identificatie')}"
        codes = retour_codes(root)
        known = self.state.record_ack(heen_key, codes)
        reasons = [f"retour on WMO{heen} {heen_key}: {' '.join(codes) or 'no RetourCodes'}"
                   + ("" if known else " (not a message this adapter sent)")]
        self.state.record(content_hash, key, number, ACKNOWLEDGED, None, "\n".join(reasons))
        return Result(ACKNOWLEDGED, number, None, reasons)

