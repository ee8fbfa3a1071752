"""The example corpus: every FHIR R4 example instance the tests use, as JSON resources.

Nictiz's nl-core examples (XML), the hub's profile examples (tests/conformance/examples.py, with the
40-entry nursing handoff Bundle) and the README's examples/*.json. Used by the invariant differential
test and by ``python -m bench.validation``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.fhir.xml import xml_to_json
from tests.conformance import examples
from tests.datafiles import NICTIZ_EXAMPLES

ROOT = Path(__file__).resolve().parents[1]


def example_corpus() -> list[dict[str, Any]]:
    """The corpus, parsed fresh on each call (callers may mutate it)."""
    out = [xml_to_json(p.read_bytes()) for p in sorted(NICTIZ_EXAMPLES.glob("*.xml"))]
    out += [make() for make in examples.ALL.values()] + [examples.handoff_bundle(40)]
    out += [json.loads(p.read_bytes()) for p in sorted((ROOT / "examples").glob("*.json"))]
    return out
