"""``python -m bench``: run the benchmark, generate data, or run one workload on its own.

python -m bench run --size small|medium|full     # everything; JSON, RESULTS.md, PNG
python -m bench generate --clients 1000 --out x  # the Bundles as NDJSON (one transaction per line)
python -m bench workload read --size tiny        # one workload (fresh database, 1 worker)
python -m bench raw --size tiny                  # only the raw PostgreSQL baselines
python -m bench report                           # rebuild RESULTS.md from bench/results/*.json
python -m bench events --workers 1,2             # notification delivery: events/s and delay
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Zorgnet Hub benchmarks.", no_args_is_help=True, add_completion=False)


@app.command()
def events(
    workers: str = typer.Option("1,2", help="hub worker process counts, comma separated."),
    count: int = typer.Option(10_000, "--events", help="Events per run."),
    rate: int = typer.Option(1000, help="Events per second committed in the steady run."),
    subscriptions: int = typer.Option(2, help="Subscriptions that each receive every event."),
    backend: str = typer.Option("postgresql", help="postgresql (HUB_BENCH_PG_ADMIN_URL) or sqlite."),
    max_count: int = typer.Option(500, help="Most events per notification (the subscriptions' max-count)."),
    modes: str = typer.Option("steady,burst", help="Runs per worker count: steady and/or burst."),
    raw: bool = typer.Option(True, "--raw/--no-raw", help="Measure the raw httpx and PostgreSQL baselines first."),
) -> None:
    """Notification delivery from commit to the receiver's 200 (see bench/events.py)."""
    from bench.events import main

    main(workers, count, rate, subscriptions, backend, max_count, modes, raw)


@app.command()
def run(
    size: str = typer.Option("small", help="tiny | small | medium | full"),
    users: int = typer.Option(8, help="Concurrent virtual users (and raw PostgreSQL connections)."),
    workers: str = typer.Option("1,2", help="Hub worker counts to measure, comma separated."),
    profile: bool = typer.Option(True, "--profile/--no-profile", help="py-spy the slowest workload."),
    seed: str = typer.Option("zorgnet-bench-1", help="Generator seed."),
    pg_set: list[str] = typer.Option(
        [], "--pg-set", help="KEY=VALUE database default for an A/B run (e.g. plan_cache_mode=force_custom_plan)."
    ),
) -> None:
    """The whole benchmark on a fresh PostgreSQL database (HUB_BENCH_PG_ADMIN_URL)."""
    from bench.runner import PLANS, run_sync

    if size not in PLANS:
        raise typer.BadParameter(f"size must be one of {', '.join(PLANS)}")
    counts = tuple(int(w) for w in workers.split(",") if w.strip())
    settings = dict(item.split("=", 1) for item in pg_set)
    run_sync(size, users=users, workers=counts, profile=profile, seed=seed, pg_settings=settings)


@app.command()
def generate(
    clients: int = typer.Option(1000, help="Number of clients."),
    out: Path = typer.Option(Path("bench-data.ndjson"), help="Output file: registry Bundles, then one per client."),
    seed: str = typer.Option("zorgnet-bench-1"),
) -> None:
    """Write the generated transaction Bundles (deterministic for a seed) as NDJSON."""
    from bench.generator import Network

    net = Network(clients, seed)
    resources = 0
    with out.open("w") as f:
        for bundle in net.registry_bundles():
            f.write(json.dumps(bundle, ensure_ascii=False) + "\n")
            resources += len(bundle["entry"])
        for i in range(clients):
            c = net.client(i)
            f.write(json.dumps(c.bundle, ensure_ascii=False) + "\n")
            resources += c.resource_count
    typer.echo(f"{out}: {clients} client Bundles, {resources} resources")


@app.command()
def workload(
    name: str = typer.Argument(..., help="ingest | read | crud | search | pgo"),
    size: str = typer.Option("tiny", help="Plan for data size and bounds."),
    users: int = typer.Option(8),
    workers: int = typer.Option(1),
    profile: bool = typer.Option(False, "--profile/--no-profile", help="Run it under py-spy (top frames)."),
) -> None:
    """One workload on a fresh database (loaded to the plan's first step), printed as JSON."""
    asyncio.run(_one(name, size, users, workers, profile))


async def _one(name: str, size: str, users: int, workers: int, profile: bool = False) -> None:
    import tempfile

    from bench import server, workloads
    from bench.auth import TokenCache
    from bench.generator import Network
    from bench.procs import CpuMeter
    from bench.runner import PLANS, _analyze, _crud_spec

    plan = PLANS[size]
    db = await server.create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp, server.running_hub(db, Path(tmp), workers) as hub:
            tokens = TokenCache(hub.env)
            loaded = workloads.Loaded(Network(plan.steps[0], "zorgnet-bench-1"))
            await workloads.load_registry(hub.base, loaded, tokens.headers("admin"))
            with CpuMeter(hub.pid, db.name) as ingest_cpu:  # (the load is the ingest workload's figure)
                ingest = await workloads.ingest(
                    hub.base,
                    loaded,
                    0,
                    plan.steps[0],
                    concurrency=users,
                    max_seconds=plan.ingest_seconds,
                    tokens=tokens,
                )
            await _analyze(db)  # as `bench run` does after each load: the plans of a loaded database
            bounds = {"concurrency": users, "max_requests": plan.max_requests, "max_seconds": plan.seconds}

            def start() -> Any:
                if name == "ingest":
                    first = len(loaded.clients)
                    return workloads.ingest(
                        hub.base,
                        loaded,
                        first,
                        first + plan.steps[0],
                        concurrency=users,
                        max_seconds=plan.seconds,
                        tokens=tokens,
                    )
                if name == "read":
                    return workloads.read_by_id(hub.base, loaded, tokens, **bounds)
                if name == "crud":
                    return workloads.crud(hub.base, tokens, spec=_crud_spec(loaded), **bounds)
                if name == "search":
                    return workloads.search_mix(hub.base, loaded, tokens, **bounds)
                if name == "pgo":
                    return workloads.pgo_everything(hub.base, loaded, tokens, **bounds)
                raise typer.BadParameter(f"unknown workload {name}")

            if profile:
                from bench.profiling import profile_workload

                top = await profile_workload(name, hub.pid, Path(tmp), plan.seconds, start)
                typer.echo(json.dumps(top, indent=2))
                return
            if name == "ingest":
                result, cpu = ingest, ingest_cpu
            else:
                with CpuMeter(hub.pid, db.name) as cpu:
                    result = await start()
            summary = result.summary()
            # CPU milliseconds per request of hub and database: steadier than req/s on a shared box
            requests = max(int(summary.get("requests", 0)), 1)
            summary["cpu_ms_per_request"] = {
                "hub": round(cpu.hub * 1000 / requests, 2),
                "postgres": round(cpu.postgres * 1000 / requests, 2),
            }
            typer.echo(json.dumps(summary, indent=2))
    finally:
        await server.drop_database(db)


@app.command()
def raw(size: str = typer.Option("tiny"), users: int = typer.Option(8)) -> None:
    """Only the raw PostgreSQL baselines, on a fresh database loaded to the plan's first step."""
    asyncio.run(_raw_only(size, users))


async def _raw_only(size: str, users: int) -> None:
    import tempfile

    from bench import raw as raw_mod
    from bench import server, workloads
    from bench.auth import TokenCache
    from bench.generator import Network
    from bench.runner import PLANS, _analyze

    plan = PLANS[size]
    db = await server.create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp, server.running_hub(db, Path(tmp), 1) as hub:
            loaded = workloads.Loaded(Network(plan.steps[0]))
            tokens = TokenCache(hub.env)
            await workloads.load_registry(hub.base, loaded, tokens.headers("admin"))
            await workloads.ingest(
                hub.base, loaded, 0, plan.steps[0], concurrency=users, max_seconds=plan.ingest_seconds, tokens=tokens
            )
            await _analyze(db)  # as `bench run` does after each load: the plans of a loaded database
        out = await raw_mod.baselines(
            db.dsn, concurrency=users, max_ops=plan.max_requests, max_seconds=plan.raw_seconds, bundle_size=16
        )
        typer.echo(json.dumps(out, indent=2))
    finally:
        await server.drop_database(db)


@app.command()
def report() -> None:
    """Rebuild bench/RESULTS.md from the JSON results."""
    from bench.report import RESULTS_MD, latest_results, markdown

    RESULTS_MD.write_text(markdown(latest_results()))
    typer.echo(str(RESULTS_MD))


if __name__ == "__main__":
    app()
