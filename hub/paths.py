"""Where the hub finds files that are not Python code."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def reference_dir() -> Path:
    """The shared reference material (FHIR R4 definitions, Nictiz profiles); HUB_REFERENCE_DIR overrides."""
    env = os.environ.get("HUB_REFERENCE_DIR")
    if env:
        return Path(env)
    for candidate in (REPO_DIR.parent / "shared" / "reference", REPO_DIR / "reference"):
        if candidate.is_dir():
            return candidate
    return REPO_DIR.parent / "shared" / "reference"


def profiles_dir() -> Path:
    """The hub's own conformance package (StructureDefinitions, SearchParameters, ValueSets, ...)."""
    return REPO_DIR / "profiles"
