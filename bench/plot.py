"""The PNG: search latency (p50 per query kind, and overall p50/p95) against the data-set size."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_search_latency(doc: dict[str, Any], path: Path) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    rows = sorted(doc.get("search_by_size", []), key=lambda r: r["clients"])
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    if rows:
        xs = [r["clients"] for r in rows]
        ax.plot(xs, [r["p50_ms"] for r in rows], "o-", color="black", linewidth=2.2, label="mix p50")
        ax.plot(xs, [r["p95_ms"] for r in rows], "o--", color="grey", linewidth=1.5, label="mix p95")
        kinds = sorted({k for r in rows for k in r.get("by_kind", {})})
        for kind in kinds:
            ax.plot(
                xs,
                [r.get("by_kind", {}).get(kind, {}).get("p50_ms", float("nan")) for r in rows],
                "s:",
                linewidth=1.2,
                label=f"{kind} p50",
            )
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:,}" for x in xs])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axhline(20, color="tab:red", linewidth=0.8, linestyle="-.", label="target p50 20 ms")
    ax.set_xlabel("clients in the database (log scale)")
    ax.set_ylabel("latency (ms)")
    m = doc.get("machine", {})
    users = rows[0].get("concurrency", "?") if rows else "?"
    ax.set_title(
        f"Search mix as a professional — {doc.get('database', '').split(' (')[0]}, "
        f"{m.get('nproc', '?')} vCPU, {users} virtual users, 1 hub worker",
        fontsize=9,
    )
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["plot_search_latency"]
