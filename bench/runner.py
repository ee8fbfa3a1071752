"""One benchmark run: a fresh database, the hub with 1 and then 2 workers, data loaded step by step
(ingest), the workloads at each worker count, the raw baselines, an optional profile, the report.

Every loop is bounded by a count and a time limit (see :class:`Plan`); the whole ``small`` plan stays
well under five minutes on the 2-core reference machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import raw, report, server, workloads
from bench.auth import TokenCache
from bench.driver import LoadResult
from bench.generator import Network
from bench.procs import CpuMeter, TreeMonitor


@dataclass(frozen=True, slots=True)
class Plan:
    """How big and how long: client counts to grow through, and the bounds of every workload."""

    steps: tuple[int, ...]
    #: Clients loaded again (new ones) with 2 workers, to measure ingest there.
    ingest_w2_clients: int
    seconds: float
    max_requests: int
    search_step_seconds: float
    raw_seconds: float
    ingest_seconds: float
    profile_seconds: float


#: Virtual users for the search-latency-by-size measurements.
LATENCY_USERS = 2

PLANS: dict[str, Plan] = {
    "tiny": Plan((20, 60), 20, 3, 3_000, 2, 1.5, 120, 3),
    "small": Plan((100, 400), 100, 6, 40_000, 4, 2.5, 200, 6),
    "medium": Plan((1_000, 10_000), 1_000, 15, 100_000, 10, 8, 3_600, 20),
    "full": Plan((1_000, 10_000, 100_000), 2_000, 20, 200_000, 12, 10, 36_000, 30),
}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""

    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout.strip()  # noqa: S603
        except OSError:
            return ""

    cpu = ""
    try:
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    except OSError:
        pass
    root = Path(__file__).resolve().parents[1]
    return {
        "nproc": run("nproc"),
        "free_g": run("free", "-g"),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "git_commit": run("git", "-C", str(root), "rev-parse", "HEAD"),
        "git_dirty": bool(run("git", "-C", str(root), "status", "--porcelain", "--untracked-files=no")),
    }


class Progress:
    """A rich progress bar for loading (clients and resources)."""

    def __init__(self, total: int, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self._progress = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[resources]} resources"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task(label, total=total, resources=0)
        self._resources = 0

    def __enter__(self) -> Progress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, clients: int, resources: int) -> None:
        self._resources += resources
        self._progress.update(self._task, advance=clients, resources=self._resources)


def _say(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


async def _measured(
    name: str,
    meter: tuple[int, str],
    coro: Any,
    hub: server.RunningHub | None = None,
    paired: tuple[raw.RawBench, str, Plan, int] | None = None,
) -> dict[str, Any]:
    """Run one hub workload (CPU metered), then, when ``paired``, its raw baseline right after it."""
    with CpuMeter(*meter) as cpu:
        result: LoadResult = await coro
    if hub is not None:
        hub.check_alive(name)
    out = result.summary()
    out["cpu_cores"] = cpu.as_dict(result.seconds)
    _say(
        f"  {name}: {out['throughput_rps']} req/s, p50 {out['p50_ms']} ms, p95 {out['p95_ms']} ms, "
        f"errors {out['errors']}  (cpu hub {out['cpu_cores']['hub']}, pg {out['cpu_cores']['postgres']}, "
        f"driver {out['cpu_cores']['load_generator']})"
    )
    if paired is not None:
        bench, base, plan, bundle = paired
        with CpuMeter(None, meter[1]) as raw_cpu:
            measured = await bench.measure(
                base, max_ops=plan.max_requests * 5, max_seconds=plan.raw_seconds, bundle_size=bundle
            )
        measured["cpu_cores"] = raw_cpu.as_dict(measured["seconds"])
        out["raw_paired"] = measured
        unit = "resources_per_s" if base.startswith("write") else "ops_per_s"
        _say(f"    raw {base}: {measured[unit]} {unit.replace('_per_s', '')}/s, p50 {measured['p50_ms']} ms")
    return out


async def _ingest(
    hub: server.RunningHub,
    loaded: workloads.Loaded,
    start: int,
    stop: int,
    plan: Plan,
    users: int,
    tokens: TokenCache,
    pids: tuple[int, str],
    rawb: raw.RawBench,
    db: server.BenchDatabase,
) -> dict[str, Any]:
    with Progress(stop - start, f"ingest clients {start}-{stop - 1} (w{hub.workers})") as bar:
        out = await _measured(
            "ingest",
            pids,
            workloads.ingest(
                hub.base,
                loaded,
                start,
                stop,
                concurrency=users,
                max_seconds=plan.ingest_seconds,
                tokens=tokens,
                progress=bar,
            ),
            hub,
        )
    _say(f"  ingest: {out['resources_per_s']} resources/s ({out['resources']} resources, {out['clients']} clients)")
    await _analyze(db)
    await rawb.refresh()
    bundle = max(1, round(out["resources_per_bundle"]))
    for base in ("write_bundle", "write_1"):
        with CpuMeter(None, db.name) as raw_cpu:
            measured = await rawb.measure(
                base, max_ops=plan.max_requests * 5, max_seconds=plan.raw_seconds, bundle_size=bundle
            )
        measured["cpu_cores"] = raw_cpu.as_dict(measured["seconds"])
        out["raw_paired" if base == "write_bundle" else "raw_paired_single"] = measured
        _say(f"    raw {base}: {measured['resources_per_s']} resources/s, p50 {measured['p50_ms']} ms")
    return out


async def _workloads(
    hub: server.RunningHub,
    loaded: workloads.Loaded,
    plan: Plan,
    users: int,
    tokens: TokenCache,
    pids: tuple[int, str],
    spec: str,
    rawb: raw.RawBench,
) -> dict[str, Any]:
    bounds = {"concurrency": users, "max_requests": plan.max_requests, "max_seconds": plan.seconds}

    def pair(base: str) -> tuple[raw.RawBench, str, Plan, int]:
        return rawb, base, plan, 16

    out: dict[str, Any] = {}
    out["read"] = await _measured(
        "read", pids, workloads.read_by_id(hub.base, loaded, tokens, **bounds), hub, pair("pk_read")
    )
    out["crud"] = await _measured(
        "crud", pids, workloads.crud(hub.base, tokens, spec=spec, **bounds), hub, pair("write_1")
    )
    out["search"] = await _measured(
        "search", pids, workloads.search_mix(hub.base, loaded, tokens, **bounds), hub, pair("ref_lookup")
    )
    out["pgo"] = await _measured(
        "pgo", pids, workloads.pgo_everything(hub.base, loaded, tokens, **bounds), hub, pair("compartment")
    )
    return out


async def run(
    size: str,
    *,
    users: int = 8,
    workers: tuple[int, ...] = (1, 2),
    profile: bool = True,
    results_dir: Path | None = None,
    seed: str = "zorgnet-bench-1",
    pg_settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The whole run; returns the result document (also written as JSON, Markdown and PNG)."""
    plan = PLANS[size]
    started = time.monotonic()
    results_dir = results_dir or report.RESULTS_DIR
    network = Network(max(plan.steps) + plan.ingest_w2_clients, seed)
    loaded = workloads.Loaded(network)
    doc: dict[str, Any] = {
        "size": size,
        "plan": asdict(plan),
        "users": users,
        "seed": seed,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "generator": "bench.generator.Network (seeded, transaction Bundle per client)",
        "load_generator": "bench.driver (aiohttp async virtual users, keep-alive, no think time)",
        "database": "",
        "runs": {},
        "search_by_size": [],
    }
    db = await server.create_database(settings=pg_settings)
    doc["pg_settings"] = dict(pg_settings or {})
    _say(f"database {db.name} on {server.admin_url().rsplit('@', 1)[-1]}")
    try:
        doc["database"] = f"PostgreSQL {await server.postgres_version(db)}"
        var_dir = Path(__file__).resolve().parents[1] / "var" / "bench" / db.name
        var_dir.mkdir(parents=True, exist_ok=True)
        doc["hub_log_dir"] = str(var_dir.relative_to(Path(__file__).resolve().parents[1]))
        rawb = raw.RawBench(db.dsn, users)
        try:
            for n, w in enumerate(workers):
                doc["runs"][f"workers_{w}"] = await _run_workers(
                    db, var_dir, w, n == 0, loaded, plan, users, doc, profile and n == 0, rawb
                )
            doc["raw_sample"] = {k: rawb.sample.get(k) for k in ("per_table", "avg_content_bytes")}
        finally:
            await rawb.close()
    except BaseException as exc:
        doc["error"] = f"{type(exc).__name__}: {exc}"
        doc["size"] = f"{size}-failed"  # kept for diagnosis, never shown as the latest result of `size`
        doc["duration_s"] = round(time.monotonic() - started, 1)
        report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = doc["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
        (results_dir / f"{stamp}-{size}-failed.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
        raise
    finally:
        await server.drop_database(db)
        _say(f"dropped database {db.name}")
    doc["duration_s"] = round(time.monotonic() - started, 1)
    doc["authenticated"] = bool(doc.pop("_authenticated", False))
    report.add_ratios(doc)
    paths = report.write(doc, results_dir)
    _say(f"done in {doc['duration_s']} s: " + ", ".join(str(p) for p in paths))
    return doc


async def _run_workers(
    db: server.BenchDatabase,
    var_dir: Path,
    w: int,
    first: bool,
    loaded: workloads.Loaded,
    plan: Plan,
    users: int,
    doc: dict[str, Any],
    profile: bool,
    rawb: raw.RawBench,
) -> dict[str, Any]:
    out: dict[str, Any] = {"workers": w}
    _say(f"hub serve with {w} worker(s)")
    with server.running_hub(db, var_dir, w) as hub:
        monitor = TreeMonitor(hub.pid).start()
        tokens = TokenCache(hub.env)
        pids = (hub.pid, db.name)
        if first:
            n = await workloads.load_registry(hub.base, loaded, tokens.headers("admin"))
            _say(f"  registry: {n} organisations, practitioners and roles")
            out["ingest_steps"] = []
            previous = 0
            for step in plan.steps:
                ingest = await _ingest(hub, loaded, previous, step, plan, users, tokens, pids, rawb, db)
                ingest["clients_total"] = step
                out["ingest_steps"].append(ingest)
                previous = step
                # Latency against size at light load (LATENCY_USERS), so it shows the service time, not the
                # queue that 8 closed-loop users build on 2 cores (the main search workload shows that).
                search = await _measured(
                    f"search @ {step} clients",
                    pids,
                    workloads.search_mix(
                        hub.base,
                        loaded,
                        tokens,
                        concurrency=LATENCY_USERS,
                        max_requests=plan.max_requests,
                        max_seconds=plan.search_step_seconds,
                    ),
                    hub,
                )
                doc["search_by_size"].append({"clients": step, "resources": loaded.resources, "workers": w, **search})
            out["ingest"] = max(out["ingest_steps"], key=lambda r: r["clients_total"])
        else:
            start = len(loaded.clients)
            out["ingest"] = await _ingest(
                hub, loaded, start, start + plan.ingest_w2_clients, plan, users, tokens, pids, rawb, db
            )
        spec = _crud_spec(loaded)
        out.update(await _workloads(hub, loaded, plan, users, tokens, pids, spec, rawb))
        out["clients"] = len(loaded.clients)
        out["resources"] = loaded.resources
        if profile:
            from bench import profiling

            slowest = min(("read", "crud", "search", "pgo"), key=lambda k: out[k]["throughput_rps"])
            worker = _hub_pids(hub.pid, w)[0]
            out["profile"] = await profiling.profile_workload(
                slowest,
                worker,
                var_dir,
                plan.profile_seconds,
                lambda: _profile_target(slowest, hub, loaded, plan, users, tokens, spec),
                tag=doc["size"],
            )
            # Ingest is profiled too (it is the workload furthest from its target): new clients, time-bounded.
            start = len(loaded.clients)
            out["profile_ingest"] = await profiling.profile_workload(
                "ingest",
                worker,
                var_dir,
                plan.profile_seconds,
                lambda: workloads.ingest(
                    hub.base,
                    loaded,
                    start,
                    start + plan.ingest_w2_clients,
                    concurrency=users,
                    max_seconds=plan.profile_seconds,
                    tokens=tokens,
                ),
                tag=doc["size"],
            )
            await _analyze(db)
        monitor.stop()
        out["peak_rss_mib"] = {"worker_max": monitor.worker_peak_mib(), "tree_total": monitor.total_peak_mib()}
        _say(f"  peak RSS: worker {out['peak_rss_mib']['worker_max']} MiB, all {out['peak_rss_mib']['tree_total']} MiB")
        doc["_authenticated"] = doc.get("_authenticated", False) or tokens.authenticated
    return out


def _profile_target(
    kind: str, hub: server.RunningHub, loaded: workloads.Loaded, plan: Plan, users: int, tokens: TokenCache, spec: str
) -> Any:
    bounds = {"concurrency": users, "max_requests": plan.max_requests * 10, "max_seconds": plan.profile_seconds}
    if kind == "read":
        return workloads.read_by_id(hub.base, loaded, tokens, **bounds)
    if kind == "crud":
        return workloads.crud(hub.base, tokens, spec=spec, **bounds)
    if kind == "search":
        return workloads.search_mix(hub.base, loaded, tokens, **bounds)
    return workloads.pgo_everything(hub.base, loaded, tokens, **bounds)


def _crud_spec(loaded: workloads.Loaded) -> str:
    """The CRUD chain runs as a professional of a GP practice (its resources are its own)."""
    return loaded.network.professionals[loaded.network.organisations["huisarts"][0].key][0].spec


def _hub_pids(root: int, workers: int) -> list[int]:
    """The hub's worker processes (uvicorn forks them shortly after start); the root when single."""
    from bench.procs import process_tree

    deadline = time.monotonic() + 10
    while True:
        tree = process_tree(root)
        if workers == 1:
            return tree
        kids = [p for p in tree if p != root]
        # the supervisor also spawns a resource-tracker helper; keep every process, the root last
        if len(kids) >= workers or time.monotonic() > deadline:
            return [*kids, root]
        time.sleep(0.2)


async def _analyze(db: server.BenchDatabase) -> None:
    """ANALYZE after each bulk load, as an operator would: autovacuum's thresholds lag a load by minutes,
    and without statistics the planner starts searches from the least selective index (measured: a
    search by subject + code + date took 490 ms before and 0.6 ms after, at 300 clients)."""
    import asyncpg

    conn = await asyncpg.connect(db.dsn, timeout=10)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    _say("  ANALYZE done")


def run_sync(size: str, **kwargs: Any) -> dict[str, Any]:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(run(size, **kwargs))


__all__ = ["PLANS", "Plan", "machine", "run", "run_sync"]
