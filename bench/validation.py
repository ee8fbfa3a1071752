"""Measures validation cost: ``python -m bench.validation`` (from the repository root) (median ms per resource).

Uses the example instances of tests/conformance (a client Patient, the shared CarePlan and a 40-entry
nursing handoff document Bundle) and reports the cold start (first validation, building trees) too; then
resources validated per second over the whole example corpus (tests/corpus.py, 155 resources).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any


def _median_ms(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main(n: int = 300) -> None:
    from hub.fhir.validation import check_base, default_validator
    from tests.conformance import examples as ex
    from tests.corpus import example_corpus

    t0 = time.perf_counter()
    v = default_validator()
    patient, plan, bundle = ex.patient(), ex.care_plan(), ex.handoff_bundle(40)
    v.validate(patient)
    cold = (time.perf_counter() - t0) * 1000
    v.validate(plan)
    v.validate(bundle)
    print(f"cold start incl. first Patient: {cold:.0f} ms")
    for name, res, count in (
        ("Patient", patient, n),
        ("CarePlan", plan, n),
        ("Bundle(40)", bundle, max(20, n // 10)),
    ):
        prof = _median_ms(functools.partial(v.validate, res), count)
        base = _median_ms(functools.partial(check_base, res), count)
        print(f"{name:11s} profile {prof:7.2f} ms   base {base:6.2f} ms")
    corpus = example_corpus()
    for res in corpus:
        v.validate(res)
    rates = []
    for _ in range(max(3, n // 40)):
        t = time.perf_counter()
        for res in corpus:
            v.validate(res)
        rates.append(len(corpus) / (time.perf_counter() - t))
    print(f"example corpus ({len(corpus)} resources): {statistics.median(rates):.0f} resources/s (profile validation)")


if __name__ == "__main__":
    main()
