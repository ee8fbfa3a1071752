"""The outputs of a run: JSON under ``bench/results/``, the Markdown table in ``bench/RESULTS.md``
(latest run of each size, with the machine it ran on), and a PNG of search latency against data size.

Every hub figure is paired with the raw PostgreSQL figure for the same work, measured in the same
run, and the ratio hub ÷ raw; the targets of issue 21 are checked here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_MD = BENCH_DIR / "RESULTS.md"

#: workload -> (raw baseline, hub figure, raw figure, what is compared)
PAIRS: dict[str, tuple[str, str, str, str]] = {
    "read": ("pk_read", "throughput_rps", "ops_per_s", "read-by-id req/s vs primary-key reads/s"),
    "crud": (
        "write_1",
        "throughput_rps",
        "ops_per_s",
        "CRUD chain req/s vs one-resource write transactions/s (resource + history + index rows)",
    ),
    "ingest": (
        "write_bundle",
        "resources_per_s",
        "resources_per_s",
        "ingested resources/s vs raw resources/s written in bundle-sized transactions",
    ),
    "search": ("ref_lookup", "throughput_rps", "ops_per_s", "search mix req/s vs indexed reference lookups/s"),
    "pgo": ("compartment", "throughput_rps", "ops_per_s", "$everything req/s vs raw Patient-compartment reads/s"),
}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def add_ratios(doc: dict[str, Any]) -> None:
    """hub ÷ raw for every workload of every worker count (against the raw run measured right after
    it), and the targets' verdicts."""
    for run in doc["runs"].values():
        for workload, (base, hub_key, raw_key, what) in PAIRS.items():
            r = run.get(workload)
            if not r or "raw_paired" not in r:
                continue
            measured = r["raw_paired"]
            hub_value = r.get(hub_key, 0.0)
            raw_value = measured.get(raw_key, 0.0)
            r["raw"] = {
                "baseline": base,
                "value": raw_value,
                "what": what,
                "ratio": _ratio(hub_value, raw_value),
                "p50_ratio": _ratio(r.get("p50_ms", 0.0), measured["p50_ms"]),
            }
        ingest = run.get("ingest", {})
        if "raw_paired_single" in ingest:
            single = ingest["raw_paired_single"]["resources_per_s"]
            ingest["raw_single"] = {
                "baseline": "write_1",
                "value": single,
                "ratio": _ratio(ingest["resources_per_s"], single),
            }
    doc["targets"] = targets(doc)


def _search_p50(doc: dict[str, Any], clients: int) -> float | None:
    for row in doc.get("search_by_size", []):
        if row["clients"] == clients:
            return float(row["p50_ms"])
    return None


#: Issue 21's targets for one worker: workload -> least hub ÷ raw (the raw baseline of PAIRS).
RATIO_TARGETS: dict[str, float] = {"read": 0.06, "crud": 0.35, "ingest": 0.40, "search": 0.03, "pgo": 0.06}
#: Search mix p50 at 10k clients: at most this many ms, and at most this multiple of the 1k figure.
SEARCH_P50_MS, SEARCH_GROWTH = 15.0, 1.3
#: Audit on ÷ off for reads (bench/audit_overhead.py, PostgreSQL), and the hub worker's peak RSS.
AUDIT_RATIO, RSS_MB = 0.85, 300


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 21's targets, checked on the 1-worker run: (target, figure, met)."""
    out: list[dict[str, Any]] = []

    def check(target: str, figure: str, met: bool | None) -> None:
        out.append({"config": "workers_1", "target": target, "figure": figure, "met": met})

    run = doc["runs"].get("workers_1", {})
    for workload, least in RATIO_TARGETS.items():
        r = run.get(workload, {})
        base = PAIRS[workload][0]
        ratio = r.get("raw", {}).get("ratio")
        errors = r.get("errors", 0)
        figure = "not measured" if ratio is None else f"{ratio:.1%} of raw {base}, {errors} errors"
        check(
            f"{workload} ≥ {least:.0%} of raw {base}, zero errors",
            figure,
            None if ratio is None else (ratio >= least and errors == 0),
        )
    rss = run.get("peak_rss_mib", {}).get("worker_max", 0)
    check(f"hub worker peak RSS ≤ {RSS_MB} MB", f"{rss:.0f} MiB", 0 < rss * 1.048576 <= RSS_MB)
    p1k, p10k = _search_p50(doc, 1_000), _search_p50(doc, 10_000)
    if p10k is None:
        sizes = [row["clients"] for row in doc.get("search_by_size", [])]
        check(
            f"search mix p50 ≤ {SEARCH_P50_MS:g} ms at 10k clients and ≤ {SEARCH_GROWTH} × 1k",
            f"not measured: this run grew to {max(sizes, default=0):,} clients (run --size medium or full)",
            None,
        )
    else:
        check(f"search mix p50 ≤ {SEARCH_P50_MS:g} ms at 10k clients", f"{p10k:.1f} ms", p10k <= SEARCH_P50_MS)
        if p1k:
            check(
                f"search p50 at 10k ≤ {SEARCH_GROWTH} × p50 at 1k",
                f"{p10k:.1f} ms vs {p1k:.1f} ms ({p10k / p1k:.2f}×)",
                p10k <= SEARCH_GROWTH * p1k,
            )
    audit = _audit_ratio()
    check(
        f"reads with audit on ÷ off ≥ {AUDIT_RATIO} (bench/audit_overhead.py, PostgreSQL, latest run)",
        "not measured" if audit is None else f"{audit:.2f}",
        None if audit is None else audit >= AUDIT_RATIO,
    )
    return out


def _audit_ratio(path: Path | None = None) -> float | None:
    """Audit on ÷ off for reads on PostgreSQL in the latest audit_overhead run: the run's own median of
    its alternated pairs where it gives one (steadier under load), else median reads/s on ÷ off."""
    path = path or RESULTS_DIR / "audit_overhead.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    paired = doc.get("ratio", {}).get("postgresql", {}).get("median")
    if paired is not None:
        return float(paired)
    rows = [r for r in doc.get("reads", []) if r.get("backend") == "postgresql"]
    on = sorted(r["reads_per_s"] for r in rows if r["audit"])
    off = sorted(r["reads_per_s"] for r in rows if not r["audit"])
    if not on or not off:
        return None
    return float(on[len(on) // 2] / off[len(off) // 2])


def write(doc: dict[str, Any], results_dir: Path = RESULTS_DIR) -> list[Path]:
    """Write the JSON, the plot, and regenerate RESULTS.md from the latest JSON of each size."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = doc["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
    json_path = results_dir / f"{stamp}-{doc['size']}.json"
    json_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    plot_path = results_dir / f"search-latency-{_slug(doc)}.png"
    from bench.plot import plot_search_latency

    plot_search_latency(doc, plot_path)
    md_path = results_dir.parent / RESULTS_MD.name if results_dir == RESULTS_DIR else results_dir / RESULTS_MD.name
    md_path.write_text(markdown(latest_results(results_dir)))
    return [json_path, plot_path, md_path]


def latest_results(results_dir: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """The newest result document of each size, in size order."""
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if "size" in doc and "runs" in doc and "error" not in doc:
            latest[_label(doc)] = (path.name, doc)
    order = {"tiny": 0, "small": 1, "medium": 2, "full": 3}
    return [dict(doc, _file=name) for name, doc in sorted(latest.values(), key=lambda v: order.get(v[1]["size"], 9))]


def _label(doc: dict[str, Any]) -> str:
    """The size, with the PostgreSQL settings of an A/B run (those are kept apart in RESULTS.md)."""
    settings = doc.get("pg_settings") or {}
    return doc["size"] + "".join(f" +{k}={v}" for k, v in sorted(settings.items()))


def _slug(doc: dict[str, Any]) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in _label(doc).replace(" +", "+")).strip("-")


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(docs: list[dict[str, Any]]) -> str:
    lines = [
        "# Zorgnet Hub benchmark results",
        "",
        "Generated by `python -m bench run` (`make bench` = small, `make bench-full` = full); do not edit by",
        "hand. Every hub figure has the raw PostgreSQL figure for the same work, measured in the same run on",
        "the same database, and the ratio hub ÷ raw. The machine is shared and noisy: compare ratios, not",
        "absolutes. CPU columns are cores used (1.0 = one full core) by hub / PostgreSQL / load generator.",
        "",
    ]
    for doc in docs:
        lines += _section(doc)
    return "\n".join(lines) + "\n"


def _section(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    free = m.get("free_g", "").splitlines()
    mem = free[1].split()[1] if len(free) > 1 else "?"
    lines = [
        f"## {_label(doc)} — {doc['started']} ({doc['_file']})",
        "",
        f"- machine: {m.get('nproc')} vCPU ({m.get('cpu')}), {mem} GB RAM, Linux {m.get('kernel')}, "
        f"Python {m.get('python')}; hub, PostgreSQL and load generator on the same box",
        f"- database: {doc['database']} (fresh database per run, dropped afterwards)",
        f"- commit: `{m.get('git_commit', '')[:12]}`{' (+ uncommitted changes)' if m.get('git_dirty') else ''}",
        f"- data: {doc['generator']}, seed `{doc['seed']}`, grown through "
        f"{', '.join(f'{s:,}' for s in doc['plan']['steps'])} clients",
        f"- load generator: {doc['load_generator']}, {doc['users']} virtual users",
        f"- authenticated requests: {'yes' if doc.get('authenticated') else 'no (hub has no `hub token` yet)'}",
        f"- duration: {doc['duration_s']} s",
        "",
    ]
    lines += [
        (
            "| workers | workload | hub | p50 / p95 / p99 ms | errors | raw baseline | raw | hub ÷ raw "
            "| p50 hub ÷ raw | CPU hub/pg/gen |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in doc["runs"].values():
        for workload in ("ingest", "read", "crud", "search", "pgo"):
            r = run.get(workload)
            if not r:
                continue
            raw = r.get("raw", {})
            hub = (
                f"{_fmt(r.get('resources_per_s'))} res/s"
                if workload == "ingest"
                else f"{_fmt(r['throughput_rps'])} req/s"
            )
            cpu = r.get("cpu_cores", {})
            lines.append(
                f"| {run['workers']} | {workload} | {hub} | {r['p50_ms']} / {r['p95_ms']} / {r['p99_ms']} | "
                f"{r['errors']} | {raw.get('baseline', '')} | {_fmt(raw.get('value'))} | "
                f"{_fmt((raw.get('ratio') or 0) * 100, 1)}% | {_fmt(raw.get('p50_ratio'), 1)}× | "
                f"{cpu.get('hub', '')}/{cpu.get('postgres', '')}/{cpu.get('load_generator', '')} |"
            )
    lines += [
        "",
        "Peak RSS of the largest hub process: "
        + ", ".join(
            f"{run['workers']} worker(s) {run['peak_rss_mib']['worker_max']} MiB "
            f"(all processes {run['peak_rss_mib']['tree_total']} MiB)"
            for run in doc["runs"].values()
        ),
        "",
    ]
    lines += [
        "Raw PostgreSQL baselines (asyncpg, same concurrency, measured right after the hub workload "
        "they are paired with):",
        "",
        "| workers | operation | ops/s | resources/s | p50 ms | p95 ms | CPU pg | what |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes = {
        "pk_read": "current row by (type, id), JSONB as text",
        "ref_lookup": "Observations by subject via idx_reference, joined to resource",
        "compartment": "every resource of one Patient compartment",
        "write_1": "1 resource + history + index rows per transaction",
        "write_bundle": "a client's network (resources + history + index rows) per transaction",
    }
    for run in doc["runs"].values():
        measured = [
            run[w]["raw_paired"] for w in ("read", "crud", "search", "pgo", "ingest") if "raw_paired" in run.get(w, {})
        ]
        if "raw_paired_single" in run.get("ingest", {}):
            measured.append(run["ingest"]["raw_paired_single"])
        for m in measured:
            lines.append(
                f"| {run['workers']} | {m['operation']} | {_fmt(m['ops_per_s'])} | "
                f"{_fmt(m.get('resources_per_s'))} | {m['p50_ms']} | {m['p95_ms']} | "
                f"{m.get('cpu_cores', {}).get('postgres', '')} | {notes.get(m['operation'], '')} |"
            )
    lines.append("")
    users = next((row.get("concurrency") for row in doc.get("search_by_size", [])), "?")
    lines += [
        f"Search latency by data-set size (1 worker, {users} virtual users: service time rather than queueing; "
        "each kind's p50 in its column):",
        "",
        "| clients | resources | p50 ms | p95 ms | " + " | ".join(_kinds(doc)) + " |",
        "|---|---|---|---|" + "---|" * len(_kinds(doc)),
    ]
    for row in doc.get("search_by_size", []):
        kinds = row.get("by_kind", {})
        lines.append(
            f"| {row['clients']:,} | {row['resources']:,} | {row['p50_ms']} | {row['p95_ms']} | "
            + " | ".join(f"{kinds.get(k, {}).get('p50_ms', '–')}" for k in _kinds(doc))
            + " |"
        )
    lines += [
        "",
        f"![search latency](results/search-latency-{_slug(doc)}.png)",
        "",
        "Targets (issue 21; one worker, hub ÷ raw in the same run):",
        "",
        "| config | target | figure | met |",
        "|---|---|---|---|",
    ]
    for t in targets(doc):
        met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['config']} | {t['target']} | {t['figure']} | {met} |")
    profiles = [run[k] for run in doc["runs"].values() for k in ("profile", "profile_ingest") if run.get(k)]
    for prof in profiles:
        lines += [
            "",
            f"Profile of the `{prof['workload']}` workload (hub worker, {prof.get('tool', '')}, "
            f"{prof.get('samples', 0)} samples; collapsed stacks in `results/{prof.get('collapsed_stacks', '')}`):",
            "",
        ]
        if "error" in prof:
            lines.append(f"- profiling failed: {prof['error']}")
        else:
            lines.append("Own time by package: " + ", ".join(f"{k} {v}%" for k, v in prof.get("own_by_package", [])))
            lines += ["", "| frame (own time) | % | hub function (inclusive) | % |", "|---|---|---|---|"]
            for (own, po), (inc, pi) in zip(prof["own"][:12], prof["inclusive"][:12], strict=False):
                lines.append(f"| `{own}` | {po} | `{inc}` | {pi} |")
    mode = next((run["pgo"].get("mode") for run in doc["runs"].values() if "pgo" in run), None)
    if mode:
        lines += ["", f"PGO workload mode: {mode}."]
    return [*lines, ""]


def _kinds(doc: dict[str, Any]) -> list[str]:
    kinds: set[str] = set()
    for row in doc.get("search_by_size", []):
        kinds.update(row.get("by_kind", {}))
    return sorted(kinds)


__all__ = ["PAIRS", "RESULTS_DIR", "RESULTS_MD", "add_ratios", "latest_results", "markdown", "targets", "write"]
