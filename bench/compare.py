"""Before/after on the same box: one workload from two checkouts of the hub, alternated.

A change that must not cost speed (a redesign, a refactor) is judged by the ratio after ÷ before of the
same workload, measured in alternation so that the box's load moves both sides alike; each round runs
``python -m bench workload NAME`` in each checkout (its own virtualenv, its own fresh database), and the
median of the per-round ratios is the figure.

    python -m bench.compare --before ../old-checkout --after . --workloads read,search --rounds 3

Writes ``bench/results/compare-<UTC time>.json`` in the *after* checkout (each round's summaries, the
load average at each start, the medians).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(add_completion=False)


def _run(checkout: Path, workload: str, size: str, users: int) -> dict[str, Any]:
    """One workload in ``checkout`` (its .venv), its JSON summary."""
    python = checkout / ".venv" / "bin" / "python"
    # The checkout's own code first on the path, for the bench and the `hub serve` it starts: a venv
    # with an editable install (or one shared by two checkouts) would otherwise import the package
    # from wherever it was installed, and both sides would run the same code.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [str(python), "-m", "bench", "workload", workload, "--size", size, "--users", str(users)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: bench workload {workload} failed:\n{done.stderr[-2000:]}")
    out = done.stdout
    summary: dict[str, Any] = json.loads(out[out.index("{") :])
    return summary


@app.command()
def main(
    before: Path = typer.Option(..., help="The checkout before the change (with its .venv)."),
    after: Path = typer.Option(Path("."), help="The checkout after the change (with its .venv)."),
    workloads: str = typer.Option("read,search", help="Comma-separated: read, crud, search, pgo."),
    rounds: int = typer.Option(3, min=1, max=10),
    size: str = typer.Option("tiny"),
    users: int = typer.Option(8),
) -> None:
    before, after = before.resolve(), after.resolve()
    result: dict[str, Any] = {
        "before": _revision(before),
        "after": _revision(after),
        "size": size,
        "users": users,
        "workloads": {},
    }
    for workload in [w.strip() for w in workloads.split(",") if w.strip()]:
        runs: list[dict[str, Any]] = []
        for i in range(rounds):
            # alternate which side goes first, so neither always meets the warmer box
            order = [("before", before), ("after", after)] if i % 2 == 0 else [("after", after), ("before", before)]
            pair: dict[str, Any] = {}
            for side, checkout in order:
                load = os.getloadavg()[0]
                summary = _run(checkout, workload, size, users)
                pair[side] = {"load_1min": round(load, 2), **summary}
                rps = summary["throughput_rps"]
                cpu = summary.get("cpu_ms_per_request", {}).get("hub")
                hub_cpu = f", hub {cpu} ms CPU per request" if cpu is not None else ""
                print(f"{workload} round {i + 1} {side}: {rps} req/s{hub_cpu} (load {load:.1f})", file=sys.stderr)
            pair["ratio"] = round(pair["after"]["throughput_rps"] / pair["before"]["throughput_rps"], 3)
            runs.append(pair)
        result["workloads"][workload] = {
            "rounds": runs,
            "median_ratio": round(statistics.median(r["ratio"] for r in runs), 3),
            "median_before_rps": statistics.median(r["before"]["throughput_rps"] for r in runs),
            "median_after_rps": statistics.median(r["after"]["throughput_rps"] for r in runs),
        }
        cpu_runs = [r for r in runs if all("cpu_ms_per_request" in r[s] for s in ("before", "after"))]
        if cpu_runs:  # (both checkouts' bench report it)
            for side in ("before", "after"):
                result["workloads"][workload][f"median_{side}_hub_cpu_ms"] = statistics.median(
                    r[side]["cpu_ms_per_request"]["hub"] for r in cpu_runs
                )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = after / "bench" / "results" / f"compare-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: {x: v[x] for x in v if x != "rounds"} for k, v in result["workloads"].items()}, indent=2))
    print(f"written: {path.relative_to(after)}", file=sys.stderr)


def _revision(checkout: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or str(checkout.name)


if __name__ == "__main__":
    app()
