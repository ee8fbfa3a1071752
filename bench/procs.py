"""Process facts from ``/proc`` (Linux): the hub's process tree, its peak RSS and CPU time, and the
CPU time PostgreSQL's backends use, so each result says where the two cores went."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, cpu seconds) of one process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return comm, int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (uvicorn's worker processes)."""
    parents: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None:
            parents.setdefault(st[1], []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    return sum(st[2] for st in (_stat(p) for p in pids) if st is not None)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def postgres_cpu(database: str | None = None) -> dict[int, float]:
    """CPU seconds per PostgreSQL process serving ``database`` (the process title names it), or of
    every ``postgres`` process when None. Other users of a shared server are left out that way; the
    background writers (WAL, checkpointer) are too, so writes are slightly under-counted."""
    out: dict[int, float] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None and st[0] == "postgres" and (database is None or f" {database} " in _cmdline(pid)):
            out[pid] = st[2]
    return out


def postgres_cpu_seconds(database: str | None = None) -> float:
    return sum(postgres_cpu(database).values())


@dataclass
class TreeMonitor:
    """Samples the hub's process tree in a thread: peak RSS per process (VmHWM, which the kernel keeps)."""

    root: int
    interval: float = 0.5
    peaks_kib: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeMonitor:
        self._thread = threading.Thread(target=self._run, name="rss-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for pid in process_tree(self.root):
            peak = max(rss_kib(pid, "VmHWM"), rss_kib(pid))
            if peak:
                self.peaks_kib[pid] = max(self.peaks_kib.get(pid, 0), peak)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()

    def worker_peak_mib(self) -> float:
        """The largest peak RSS of any one hub process (with workers > 1 the supervisor is small)."""
        return round(max(self.peaks_kib.values(), default=0) / 1024, 1)

    def total_peak_mib(self) -> float:
        return round(sum(self.peaks_kib.values()) / 1024, 1)

    def workers(self) -> list[int]:
        tree = process_tree(self.root)
        return tree[1:] if len(tree) > 1 else tree


@dataclass
class CpuMeter:
    """CPU seconds used by the hub (its process tree), PostgreSQL (the backends of ``database``) and
    this process (the load generator) over a span. Per process, so a backend that exits in between
    loses its share (never makes the total negative)."""

    hub_root: int | None
    database: str | None = None
    _start: tuple[dict[int, float], dict[int, float], float] = ({}, {}, 0.0)

    def _now(self) -> tuple[dict[int, float], dict[int, float], float]:
        t = os.times()
        hub = {p: cpu_seconds([p]) for p in process_tree(self.hub_root)} if self.hub_root else {}
        return hub, postgres_cpu(self.database), t.user + t.system

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        hub, pg, driver = self._now()
        h0, p0, d0 = self._start
        self.hub = round(sum(v - h0.get(p, 0.0) for p, v in hub.items()), 2)
        self.postgres = round(sum(v - p0.get(p, 0.0) for p, v in pg.items()), 2)
        self.driver = round(driver - d0, 2)

    def as_dict(self, seconds: float) -> dict[str, float]:
        """CPU seconds per wall second (1.0 = one full core) for hub, PostgreSQL and the load generator."""
        wall = max(seconds, 1e-9)
        return {
            "hub": round(self.hub / wall, 2),
            "postgres": round(self.postgres / wall, 2),
            "load_generator": round(self.driver / wall, 2),
        }


__all__ = ["CpuMeter", "TreeMonitor", "cpu_seconds", "postgres_cpu", "postgres_cpu_seconds", "process_tree", "rss_kib"]
