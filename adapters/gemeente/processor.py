"""One inbound message, start to end: parse safely, validate, check, apply, answer, remember.

The answer is remembered (by content hash) only after the hub has been written, so a crash in
between makes the message be processed again, which the idempotent writes turn into a no-op.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lxml import etree

from adapters.common.client import HubClient
from adapters.common.errors import HubError, HubUnavailable, UnsafeXml
from adapters.common.xmlsafe import XmlLimits, parse_xml
from adapters.gemeente import schemas, toewijzing
from adapters.gemeente.batching import GroupCommit
from adapters.gemeente.config import Catalogue, GemeenteSettings
from adapters.gemeente.inbound import Context, Outcome, handle
from adapters.gemeente.messages import HEEN_OF, RETOUR_OF, Header, Node, message_number, read_header
from adapters.gemeente.retour import TECHNICAL as TECHNICAL_CODE
from adapters.gemeente.retour import Finding, build_retour, retour_codes
from adapters.gemeente.state import Row, State

log = logging.getLogger("adapter.gemeente")

#: Statuses of a processed message.
ACCEPTED, REJECTED, TECHNICAL_REJECTED, ACKNOWLEDGED, UNREADABLE, NOT_MAPPED = (
    "accepted",
    "rejected",
    "technical",
    "acknowledged",
    "unreadable",
    "not-mapped",
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

    def __init__(
        self, hub: HubClient, state: State, settings: GemeenteSettings, catalogue: Catalogue | None = None
    ) -> None:
        self.hub = hub
        self.state = state
        self.settings = settings
        self.catalogue = catalogue or Catalogue.load(settings.products)
        self.limits = XmlLimits(max_bytes=settings.max_message_bytes)
        self._locks: dict[str, asyncio.Lock] = {}
        self._organisations: dict[str, list[dict[str, Any]]] = {}
        #: WMO301s that arrive together are applied together (one read, one transaction per group).
        self._groups: GroupCommit[_Job, Result] = GroupCommit(
            self._toewijzingen, max_size=settings.group_size, max_groups=settings.groups_in_flight
        )

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def process(self, data: bytes) -> Result:
        content_hash = hashlib.sha256(data).hexdigest()
        seen = self.state.received(content_hash)
        if seen is not None:
            return Result(
                seen.status, seen.number, seen.retour, [r for r in seen.reasons.split("\n") if r], replayed=True
            )
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
            return self._answer(content_hash, root, number, None, [_reused(header)])
        if number == "301":
            checked = toewijzing.check(self._context(), node, header)
            if isinstance(checked, list):
                return self._answer(content_hash, root, number, None, checked)
            return await self._groups.submit(_Job(content_hash, root, header, checked), checked.keys)
        lock_key = node.text("Client/Bsn") or node.text("Antwoord/ReferentieAanbieder") or header.key
        async with self._lock(lock_key):
            outcome = await self._apply(number, header, lambda ctx: handle(ctx, number, node, header))
        if not outcome.findings and outcome.marks:
            self.state.record_sent(f"in:{header.key}", number, "inbound", None, outcome.marks)
        return self._answer(content_hash, root, number, header.key, outcome.findings)

    def _context(self) -> Context:
        return Context(self.hub, self.settings, self.catalogue, dt.date.today(), self._organisations)

    async def _apply(self, number: str, header: Header, run: Callable[[Context], Awaitable[Outcome]]) -> Outcome:
        """``run`` against the hub, again on a concurrent change; a refusal by the hub is a finding."""
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                return await run(self._context())
            except HubUnavailable:
                raise  # transient: the transport keeps the message and offers it again
            except HubError as exc:
                if exc.status in (409, 412) and attempt < CONFLICT_RETRIES:
                    log.info("WMO%s %s: concurrent change in the hub, again (%s)", number, header.key, exc)
                    continue
                # The hub refused what the message maps to (4xx): nothing was applied; say so
                # rather than offering the message again forever.
                log.error("WMO%s %s: the hub refused it: %s", number, header.key, exc)
                return Outcome([Finding(TECHNICAL_CODE, f"the hub refused the message: {exc}", None)])
        raise AssertionError("unreachable")  # pragma: no cover

    async def _toewijzingen(self, jobs: list[_Job]) -> list[Result]:
        """A group of WMO301s (different clients): one read and one transaction for all of them; when
        the hub refuses the group, each message on its own (so only the culprit is refused)."""
        async with AsyncExitStack() as stack:
            for bsn in sorted({j.checked.bsn for j in jobs}):  # the same locks as the one-by-one messages
                await stack.enter_async_context(self._lock(bsn))
            outcomes: list[Outcome | None] = []
            todo: list[_Job] = []
            for job in jobs:  # rule 9056 again: an earlier message with this key may have been recorded since
                known = self.state.key_hash(job.header.key)
                if known is not None and known != job.content_hash:
                    outcomes.append(Outcome([_reused(job.header)]))
                else:
                    outcomes.append(None)
                    todo.append(job)
            applied: list[Outcome] | None = None
            if len(todo) > 1:
                try:
                    applied = await toewijzing.apply(self._context(), [j.checked for j in todo])
                except HubError as exc:
                    log.info("a group of %d WMO301s was refused (%s): each on its own", len(todo), exc)
            if applied is None:
                applied = [await self._apply("301", j.header, partial(_apply_one, j.checked)) for j in todo]
        done = iter(applied)
        answers = [(j, o if o is not None else next(done)) for j, o in zip(jobs, outcomes, strict=True)]
        return self._answer_many([(j.content_hash, j.root, "301", j.header.key, o.findings) for j, o in answers])

    def _retour_id(self) -> str:
        return f"R{self.state.next_numbers('retour', 1)[0]:011d}"

    def _technical(self, content_hash: str, root: etree._Element, number: str, errors: list[str]) -> Result:
        reasons = [f"XSD WMO{number}: {e}" for e in errors[:20]]
        retour = None
        if number in RETOUR_OF:
            retour = build_retour(
                root, number, [], identificatie=self._retour_id(), today=dt.date.today(), technical=True
            )
            if schemas.validate(RETOUR_OF[number], etree.fromstring(retour)):
                retour = None  # the header itself is broken: no valid retour can echo it
        self.state.record(content_hash, None, number, TECHNICAL_REJECTED, retour, "\n".join(reasons))
        return Result(TECHNICAL_REJECTED, number, retour, reasons)

    def _answer(
        self, content_hash: str, root: etree._Element, number: str, key: str | None, findings: list[Finding]
    ) -> Result:
        return self._answer_many([(content_hash, root, number, key, findings)])[0]

    def _answer_many(self, answers: list[tuple[str, etree._Element, str, str | None, list[Finding]]]) -> list[Result]:
        """The retours of processed messages, remembered in one state transaction."""
        numbers = self.state.next_numbers("retour", len(answers))
        results: list[Result] = []
        rows: list[Row] = []
        for (content_hash, root, number, key, findings), n in zip(answers, numbers, strict=True):
            retour = build_retour(root, number, findings, identificatie=f"R{n:011d}", today=dt.date.today())
            reasons = [f"{f.code}: {f.reason}" for f in findings]
            status = REJECTED if findings else ACCEPTED
            rows.append((content_hash, key if not findings else None, number, status, retour, "\n".join(reasons)))
            results.append(Result(status, number, retour, reasons))
        self.state.record_many(rows)
        return results

    def _acknowledge(self, content_hash: str, root: etree._Element, number: str, key: str) -> Result:
        heen = HEEN_OF[number]
        node = Node(root)
        heen_key = f"{heen}:{node.text('Header/Afzender')}:{node.text('Header/BerichtIdentificatie/Identificatie')}"
        codes = retour_codes(root)
        known = self.state.record_ack(heen_key, codes)
        reasons = [
            f"retour on WMO{heen} {heen_key}: {' '.join(codes) or 'no RetourCodes'}"
            + ("" if known else " (not a message this adapter sent)")
        ]
        self.state.record(content_hash, key, number, ACKNOWLEDGED, None, "\n".join(reasons))
        return Result(ACKNOWLEDGED, number, None, reasons)


@dataclass
class _Job:
    """A checked WMO301 waiting for its group."""

    content_hash: str
    root: etree._Element
    header: Header
    checked: toewijzing.Checked


async def _apply_one(checked: toewijzing.Checked, ctx: Context) -> Outcome:
    return (await toewijzing.apply(ctx, [checked]))[0]


def _reused(header: Header) -> Finding:
    return Finding(
        "9056",
        f"BerichtIdentificatie {header.identificatie} of {header.afzender} was used before for a different message",
        None,
    )
