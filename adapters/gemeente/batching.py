"""Group commit: messages submitted concurrently are applied in groups, a few groups at a time.

No timer: a message that arrives while the hub is idle goes alone (no added latency); while groups
are in flight, arrivals queue up and the next free slot takes them together (up to ``max_size``).
Each item names keys (its client, its numbers): a group never holds two items with a common key,
no two groups in flight share one, and an item never overtakes an earlier one with a common key, so
messages about one client are applied one after another, in the order they were submitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Pending(Generic[T, R]):
    item: T
    keys: frozenset[str]
    future: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit(Generic[T, R]):
    """Runs ``apply(items) -> results`` (one result per item, in order) over groups of submitted items."""

    def __init__(self, apply: Callable[[list[T]], Awaitable[list[R]]], max_size: int = 50, max_groups: int = 2) -> None:
        self.apply = apply
        self.max_size = max_size
        self.max_groups = max_groups
        self._queue: list[_Pending[T, R]] = []
        self._busy: set[str] = set()
        self._running: set[asyncio.Task[None]] = set()
        #: Sizes of the groups applied so far (for the benchmark and the logs).
        self.sizes: list[int] = []

    async def submit(self, item: T, keys: frozenset[str]) -> R:
        pending: _Pending[T, R] = _Pending(item, keys)
        self._queue.append(pending)
        self._pump()
        return await pending.future

    def _take(self) -> list[_Pending[T, R]]:
        group: list[_Pending[T, R]] = []
        blocked = set(self._busy)
        for pending in self._queue:
            if len(group) >= self.max_size:
                break
            if pending.keys & blocked:
                blocked |= pending.keys  # whatever shares a key with it waits behind it
                continue
            group.append(pending)
            blocked |= pending.keys
        chosen = {id(p) for p in group}
        self._queue = [p for p in self._queue if id(p) not in chosen]
        return group

    def _pump(self) -> None:
        while self._queue and len(self._running) < self.max_groups:
            group = self._take()
            if not group:
                return
            for p in group:
                self._busy |= p.keys
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, group: list[_Pending[T, R]]) -> None:
        try:
            results = await self.apply([p.item for p in group])
        except BaseException as exc:  # noqa: BLE001 - every waiting message gets the failure
            for p in group:
                if not p.future.done():
                    p.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self.sizes.append(len(group))
            for p, result in zip(group, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)
        finally:
            for p in group:
                self._busy -= p.keys
            task = asyncio.current_task()
            if task is not None:  # a finished group frees its slot before the next is taken
                self._running.discard(task)
            self._pump()
