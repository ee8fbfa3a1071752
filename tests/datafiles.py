"""Where the test fixtures are: ``tests/data/``, copied from the reference material by
``scripts/sync_reference.py`` (the tests never read anything outside the repository)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
#: The nl-core example instances of the Nictiz zib2020 release (XML).
NICTIZ_EXAMPLES = DATA / "nictiz" / "examples"
#: The official FHIRPath Patch test cases.
PATCH_CASES = DATA / "fhir-r4" / "fhir-patch-tests.xml"
