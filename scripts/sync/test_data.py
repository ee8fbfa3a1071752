"""Fixtures the test suite reads, copied into ``tests/data/`` (nothing in the tests reads ../shared).

- ``fhir-r4/fhir-patch-tests.xml``: the 33 official FHIRPath Patch cases.
- ``nictiz/examples/*.xml``: the nl-core example instances of the zib2020 release.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def run(source: Path, repo: Path) -> None:
    data = repo / "tests" / "data"
    (data / "fhir-r4").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "fhir-r4" / "fhir-patch-tests.xml", data / "fhir-r4" / "fhir-patch-tests.xml")
    examples = data / "nictiz" / "examples"
    if examples.exists():
        shutil.rmtree(examples)
    examples.mkdir(parents=True)
    count = 0
    for path in sorted((source / "nictiz" / "Nictiz-R4-zib2020" / "examples").glob("*.xml")):
        shutil.copyfile(path, examples / path.name)
        count += 1
    print(f"  patch cases, {count} nl-core examples")


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(__file__).resolve().parents[2])
