"""bench.report checks issue 21's targets as hub ÷ raw ratios of the 1-worker run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report


def _doc(read_ratio: float, p1k: float, p10k: float) -> dict[str, Any]:
    run: dict[str, Any] = {w: {"raw": {"ratio": 0.5}, "errors": 0} for w in report.RATIO_TARGETS}
    run["read"] = {"raw": {"ratio": read_ratio}, "errors": 0}
    run["peak_rss_mib"] = {"worker_max": 250}
    sizes = [{"clients": 1_000, "p50_ms": p1k}, {"clients": 10_000, "p50_ms": p10k}]
    return {"runs": {"workers_1": run}, "search_by_size": sizes}


def _verdicts(doc: dict[str, Any]) -> dict[str, bool | None]:
    return {t["target"].split(" ")[0]: t["met"] for t in report.targets(doc)}


def test_a_ratio_below_its_target_is_not_met() -> None:
    assert _verdicts(_doc(0.061, 10, 12))["read"] is True
    assert _verdicts(_doc(0.059, 10, 12))["read"] is False


def test_search_latency_at_10k_has_a_ceiling_and_a_growth_limit() -> None:
    targets = report.targets(_doc(0.1, 11, 14))
    assert all(t["met"] for t in targets if t["target"].startswith("search") and "p50" in t["target"])
    slow = [t for t in report.targets(_doc(0.1, 10, 16)) if "ms at 10k" in t["target"]]
    assert slow and slow[0]["met"] is False
    steep = [t for t in report.targets(_doc(0.1, 8, 12)) if "× p50 at 1k" in t["target"]]
    assert steep and steep[0]["met"] is False


def test_errors_fail_a_ratio_target() -> None:
    doc = _doc(0.1, 10, 12)
    doc["runs"]["workers_1"]["crud"]["errors"] = 3
    assert _verdicts(doc)["crud"] is False


def test_audit_ratio_is_the_median_on_over_off_on_postgresql(tmp_path: Path) -> None:
    rows = [
        {"backend": "postgresql", "audit": a, "reads_per_s": v}
        for a, v in ((False, 1000), (True, 900), (False, 1000), (True, 800), (True, 860))
    ] + [{"backend": "sqlite", "audit": True, "reads_per_s": 1}]
    path = tmp_path / "audit_overhead.json"
    path.write_text(json.dumps({"reads": rows}))
    assert report._audit_ratio(path) == 0.86
    assert report._audit_ratio(tmp_path / "absent.json") is None
    # the run's own median of its alternated on/off pairs, where it recorded one
    paired = {"postgresql": {"median": 0.862, "pairs": [0.848, 0.862, 1.011]}}
    path.write_text(json.dumps({"reads": rows, "ratio": paired}))
    assert report._audit_ratio(path) == 0.862
