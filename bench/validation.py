"""Measures validation cost: ``python -m bench.validation`` (from the repository root) (median ms per resource).

Uses the example instances of tests/conformance (a client Patient, the shared CarePlan and a 40-entry
nursing handoff document Bundle) and reports the cold start (first validation, building trees) too; then
resources validated per second over the whole example corpus (tests/corpus.py, 155 resources), for
profile validation and for the base structure check; the base check is measured in alternated rounds
against the models alone (what ``check_base`` was before its compiled first pass), in one process.
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
    _base_rounds(corpus, rounds=max(3, n // 60))


def _models_only(resource: dict[str, Any]) -> None:
    """The base check as the models alone make it (the reference the compiled pass stands in for)."""
    from pydantic import ValidationError

    from hub.fhir.parse import _model

    try:
        _model(resource["resourceType"]).model_validate(resource)
    except ValidationError:
        pass


def _corpus_rate(fn: Callable[[dict[str, Any]], Any], corpus: list[dict[str, Any]], passes: int) -> float:
    t = time.perf_counter()
    for _ in range(passes):
        for res in corpus:
            fn(res)
    return passes * len(corpus) / (time.perf_counter() - t)


def _base_rounds(corpus: list[dict[str, Any]], rounds: int) -> None:
    from hub.fhir.validation import check_base

    models: list[float] = []
    fast: list[float] = []
    _corpus_rate(_models_only, corpus, 1)  # warm: models and compiled tables built
    _corpus_rate(check_base, corpus, 1)
    for _ in range(rounds):  # alternated, so that load on a shared machine hits both alike
        models.append(_corpus_rate(_models_only, corpus, 2))
        fast.append(_corpus_rate(check_base, corpus, 20))
    m, f = statistics.median(models), statistics.median(fast)
    print(
        f"example corpus base check: {f:.0f} resources/s (check_base), {m:.0f} resources/s (models alone), "
        f"x{f / m:.1f} ({rounds} alternated rounds)"
    )


if __name__ == "__main__":
    main()
