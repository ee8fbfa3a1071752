"""Where the hub finds files that are not Python code: all of it ships inside the package.

``hub/definitions/`` holds what the hub needs at run time (the R4 search parameters and Patient
compartment, the Nictiz zib2020/nl-core definitions, and the hub's own conformance package in
``profiles/``). It is generated from the public reference material by ``scripts/sync_reference.py``
and ``scripts/build_profiles.py``; nothing outside the package is read.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def definitions_dir() -> Path:
    """The package data folder of run-time definitions."""
    return PACKAGE_DIR / "definitions"


def profiles_dir() -> Path:
    """The hub's own conformance package (StructureDefinitions, SearchParameters, ValueSets, ...)."""
    return definitions_dir() / "profiles"


def nictiz_package() -> Path:
    """The Nictiz zib2020/nl-core conformance resources, as one compact gzip'd JSON array."""
    return definitions_dir() / "nictiz" / "zib2020.json.gz"
