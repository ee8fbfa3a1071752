"""A py-spy profile of the hub worker while one workload runs: the collapsed stacks are kept (and a
flame graph SVG), and the top frames by own time and by inclusive time go into the report."""

from __future__ import annotations

import asyncio
import re
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


#: Where own time goes, by the package of the innermost frame.
PACKAGES = (
    "asyncpg",
    "sqlalchemy",
    "pydantic",
    "fhir_core",
    "fhirpathpy",
    "fastapi",
    "starlette",
    "uvicorn",
    "orjson",
    "simplejson",
    "joserfc",
    "cryptography",
    "asyncio",
    "hub/",
)
#: Hub frames that only wrap everything (entry points, routing): left out of the inclusive list.
_WRAPPERS = ("hub/cli.py", "hub/api/routes/", "hub/api/handlers/__init__.py", "hub/app.py")


_LINE = re.compile(r":\d+\)$")


def top_frames(collapsed: str, n: int = 15) -> dict[str, Any]:
    """From py-spy's raw (collapsed) output, in % of samples: the leading frames by own time, own time
    by package, and the hub's own functions by inclusive time (what a fix in hub/ can win)."""
    own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
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
        by_package[
            next((p.rstrip("/") for p in PACKAGES if f"({p}" in frames[-1] or f"/{p}" in frames[-1]), "other")
        ] += count
        for frame in {_LINE.sub(")", f) for f in frames}:  # per function, whatever line
            if "(hub/" in frame and not any(w in frame for w in _WRAPPERS):
                inclusive[frame] += count
    pct = (lambda c: round(100 * c / total, 1)) if total else (lambda c: 0.0)
    return {
        "samples": total,
        "own": [(f, pct(c)) for f, c in own.most_common(n)],
        "own_by_package": [(k, pct(c)) for k, c in by_package.most_common()],
        "inclusive": [(f, pct(c)) for f, c in inclusive.most_common(n)],
    }


#: This checkout's root, cut off hub frames (wherever the repository is cloned).
_REPO = f"{Path(__file__).resolve().parents[1]}/"


def _short(frame: str) -> str:
    """'handle (hub/api/handlers/__init__.py:41)' with the site-packages / repo prefix cut off."""
    for marker in ("site-packages/", _REPO, "lib/python3.11/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return f"{head}({tail.split(marker, 1)[-1]}"
    return frame


async def profile_workload(
    kind: str, pid: int, work_dir: Path, seconds: float, workload: Callable[[], Awaitable[Any]], tag: str = ""
) -> dict[str, Any]:
    """Run ``workload`` again under ``py-spy record`` attached to ``pid`` for ``seconds``."""
    exe = py_spy()
    if exe is None:
        return {"workload": kind, "error": "py-spy is not installed (pip install py-spy)"}
    raw_path = work_dir / f"profile-{kind}.txt"
    proc = await asyncio.create_subprocess_exec(
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "200",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(raw_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.5)
    result = await workload()
    _, err = await asyncio.wait_for(proc.communicate(), timeout=seconds + 60)
    if proc.returncode != 0 or not raw_path.exists():
        return {"workload": kind, "error": f"py-spy failed: {err.decode(errors='replace')[-500:]}"}
    collapsed = raw_path.read_text()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    kept = RESULTS_DIR / f"profile-{tag + '-' if tag else ''}{kind}.collapsed.txt"
    kept.write_text(collapsed)
    return {
        "workload": kind,
        "tool": "py-spy record --rate 200 --nonblocking",
        "seconds": seconds,
        "throughput_rps_under_profiler": round(result.throughput, 1),
        "collapsed_stacks": str(kept.name),
        **top_frames(collapsed),
    }


__all__ = ["profile_workload", "py_spy", "top_frames"]
