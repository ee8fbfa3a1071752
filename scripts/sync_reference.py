"""Turn the shared reference material into what the repository ships: package data and test fixtures.

    .venv/bin/python scripts/sync_reference.py [PATH/TO/shared/reference]

The reference folder (FHIR R4 definitions, Nictiz zib2020/nl-core, eOverdracht, iWmo 3.2 ...) is the
*source*; nothing reads it at run time or in tests. Each module in ``scripts/sync/`` copies or compacts
what one part of the product needs (``run(shared_reference, repo)``); this runner runs them all, in
name order. The generated files are committed; rerun after the reference material changes and review
the diff. Default source: ``../shared/reference`` beside the repository.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else REPO.parent / "shared" / "reference"
    if not source.is_dir():
        print(f"sync_reference: no reference folder at {source}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    for path in sorted((REPO / "scripts" / "sync").glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"sync_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {path.stem}")
        module.run(source, REPO)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
