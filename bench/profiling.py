"""A py-spy profile of the hub worker while one workload runs: the collapsed stacks are kept (and a
flame graph SVG), and the top frames by own time and by inclusive time go into the report."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.report import RESULTS_DIR


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def top_frames(collapsed: str, n: int = 15) -> dict[str, Any]:
    """Own-time and inclusive-time leaders from py-spy's raw (collapsed) output, in % of samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    pct = (lambda c: round(100 * c / total, 1)) if total else (lambda c: 0.0)
    return {
        "samples": total,
        "own": [(f, pct(c)) for f, c in own.most_common(n)],
        "inclusive": [(f, pct(c)) for f, c in inclusive.most_common(n * 3)
                      if not f.startswith(("<module>", "run (", "_run (", "main (", "wrapper ("))][:n],
    }


def _short(frame: str) -> str:
    """'handle (hub/api/handlers/__init__.py:41)' with the site-packages / repo prefix cut off."""
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return f"{head}({tail.split(marker, 1)[-1]}"
    return frame


async def profile_workload(kind: str, pid: int, work_dir: Path, seconds: float,
                           workload: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Run ``workload`` again under ``py-spy record`` attached to ``pid`` for ``seconds``."""
    exe = py_spy()
    if exe is None:
        return {"workload": kind, "error": "py-spy is not installed (pip install py-spy)"}
    raw_path = work_dir / f"profile-{kind}.txt"
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200", "--nonblocking",
        "--format", "raw", "--output", str(raw_path), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.5)
    result = await workload()
    _, err = await asyncio.wait_for(proc.communicate(), timeout=seconds + 60)
    if proc.returncode != 0 or not raw_path.exists():
        return {"workload": kind, "error": f"py-spy failed: {err.decode(errors='replace')[-500:]}"}
    collapsed = raw_path.read_text()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    kept = RESULTS_DIR / f"profile-{kind}.collapsed.txt"
    kept.write_text(collapsed)
    return {"workload": kind, "tool": "py-spy record --rate 200 --nonblocking", "seconds": seconds,
            "throughput_rps_under_profiler": round(result.throughput, 1), "collapsed_stacks": str(kept.name),
            **top_frames(collapsed)}


__all__ = ["profile_workload", "py_spy", "top_frames"]
