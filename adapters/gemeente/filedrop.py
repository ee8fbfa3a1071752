"""The file-drop transport: messages in ``inbox/``, answers in ``outbox/``.

Each ``*.xml`` in the inbox is processed, its retour written into the outbox and beside the
message, and then the message is moved to ``inbox/done/`` (accepted, acknowledged) or
``inbox/failed/`` (refused; ``.reason.txt`` says why). The move is the last step: a crash before
it leaves the message in the inbox and the next run processes it again (the adapter's state and the
idempotent hub writes make that a replay). A hub that cannot be reached leaves the message where it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from adapters.common.errors import HubUnavailable
from adapters.gemeente.messages import RETOUR_OF
from adapters.gemeente.outbound import Outbound
from adapters.gemeente.processor import Processor, Result

log = logging.getLogger("adapter.gemeente.filedrop")


@dataclass
class RunStats:
    done: int = 0
    failed: int = 0
    deferred: int = 0
    sent: int = 0
    results: dict[str, str] = field(default_factory=dict)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class FileDrop:
    def __init__(
        self, processor: Processor, inbox: Path, outbox: Path, outbound: Outbound | None = None, concurrency: int = 100
    ) -> None:
        self.processor = processor
        self.inbox = inbox
        self.outbox = outbox
        self.outbound = outbound
        self.concurrency = concurrency
        for d in (inbox, outbox, inbox / "done", inbox / "failed"):
            d.mkdir(parents=True, exist_ok=True)

    def pending(self) -> list[Path]:
        return sorted(p for p in self.inbox.iterdir() if p.is_file() and p.suffix.lower() == ".xml")

    async def _one(self, path: Path, stats: RunStats) -> None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        try:
            result = await self.processor.process(data)
        except HubUnavailable as exc:
            log.warning("%s: hub unavailable, left in the inbox (%s)", path.name, exc)
            stats.deferred += 1
            return
        except Exception:
            log.exception("%s: failed unexpectedly, left in the inbox", path.name)
            stats.deferred += 1
            return
        self._settle(path, result)
        stats.results[path.name] = result.status
        if result.ok:
            stats.done += 1
        else:
            stats.failed += 1

    def _settle(self, path: Path, result: Result) -> None:
        target = self.inbox / ("done" if result.ok else "failed")
        if result.retour is not None:
            name = f"{path.stem}.WMO{RETOUR_OF.get(result.number or '', 'retour')}.xml"
            _atomic_write(self.outbox / name, result.retour)
            _atomic_write(target / name, result.retour)
        if result.reasons:
            _atomic_write(target / f"{path.stem}.reason.txt", ("\n".join(result.reasons) + "\n").encode())
        os.replace(path, target / path.name)

    async def run_once(self) -> RunStats:
        """Process what is in the inbox now (messages of one client in file-name order), then poll the hub."""
        stats = RunStats()
        semaphore = asyncio.Semaphore(self.concurrency)

        async def bounded(p: Path) -> None:
            async with semaphore:
                await self._one(p, stats)

        await asyncio.gather(*(bounded(p) for p in self.pending()))
        if self.outbound is not None:
            try:
                stats.sent = len(await self.outbound.poll())
            except HubUnavailable as exc:
                log.warning("outbound poll: hub unavailable (%s)", exc)
        return stats

    async def run(self, interval: float = 2.0, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            stats = await self.run_once()
            if stats.done or stats.failed or stats.sent:
                log.info(
                    "done %d, failed %d, deferred %d, sent %d", stats.done, stats.failed, stats.deferred, stats.sent
                )
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
