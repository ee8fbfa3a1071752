"""Copy the iWmo 3.2 schemas, code lists and example messages into the repository.

The XSDs and the enumeration table become package data of the gemeente adapter
(``adapters/gemeente/data/iwmo32/``); the example messages become test data (``tests/data/iwmo/``).
Run: ``python scripts/sync/iwmo.py ../shared/reference`` (or through scripts/sync_reference.py).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

#: The schemas the adapter validates against (Basisschema plus every message schema).
MESSAGES = ("301", "302", "305", "306", "307", "308", "315", "316", "317", "318", "319", "320", "323")


def run(shared_reference: Path, repo: Path) -> None:
    source = shared_reference / "iwmo-3.2"
    xsd_out = repo / "adapters" / "gemeente" / "data" / "iwmo32"
    examples_out = repo / "tests" / "data" / "iwmo"
    xsd_out.mkdir(parents=True, exist_ok=True)
    examples_out.mkdir(parents=True, exist_ok=True)
    # One file name for the Basisschema: the message schemas import it as "basisschema.xsd".
    shutil.copyfile(source / "xsd" / "Basisschema.xsd", xsd_out / "basisschema.xsd")
    for number in MESSAGES:
        shutil.copyfile(source / "xsd" / f"WMO{number}.xsd", xsd_out / f"WMO{number}.xsd")
        example = source / "examples" / f"WMO{number}.xml"
        if example.exists():
            shutil.copyfile(example, examples_out / f"WMO{number}.xml")
    shutil.copyfile(source / "codelists" / "basisschema_enumerations.csv", xsd_out / "enumerations.csv")
    (examples_out / "PROVENANCE.md").write_text(
        "Example iWmo 3.2 messages copied by scripts/sync/iwmo.py from the reference set (third-party examples,\n"
        "test BSN 999900006, invented AGB and gemeente codes).\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/sync/iwmo.py /path/to/shared/reference")
    run(Path(sys.argv[1]), Path(__file__).resolve().parents[2])
