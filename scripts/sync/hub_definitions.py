"""The hub's run-time definitions, compacted from the reference material into ``hub/definitions/``.

- ``r4/search-parameters.json.gz``: the 1,375 R4 SearchParameters, only the fields the registry reads.
- ``r4/compartment-patient.json``: the R4 Patient CompartmentDefinition (code -> params).
- ``nictiz/zib2020.json.gz``: every zib2020/nl-core conformance resource (StructureDefinitions,
  ValueSets, CodeSystems, NamingSystems), converted from XML to JSON, without narrative and mappings.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

SEARCH_PARAMETER_FIELDS = (
    "resourceType",
    "id",
    "url",
    "name",
    "code",
    "base",
    "type",
    "expression",
    "target",
    "multipleOr",
    "multipleAnd",
    "modifier",
    "comparator",
    "chain",
    "component",
)
#: Parts of a conformance resource the validator never reads (prose for people, mappings to other standards).
DROP = ("text", "mapping", "contact", "copyright", "purpose")
DROP_IN_ELEMENT = ("mapping", "comment", "requirements", "alias", "definition")


def _write_gz(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    from hub.fhir.jsonio import dumps  # keeps decimals exactly as written

    raw = dumps(data)
    # mtime=0: the same input gives the same bytes (no spurious diffs on a rerun)
    with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(raw)


def _compact(resource: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k not in DROP}
    for part in ("snapshot", "differential"):
        if isinstance(out.get(part), dict):
            out[part] = {
                "element": [
                    {k: v for k, v in el.items() if k not in DROP_IN_ELEMENT} for el in out[part].get("element", [])
                ]
            }
    return out


def search_parameters(source: Path) -> list[dict[str, Any]]:
    bundle = json.loads((source / "fhir-r4" / "search-parameters.json").read_bytes())
    out = []
    for entry in bundle.get("entry", []):
        res = entry.get("resource") or {}
        if res.get("resourceType") == "SearchParameter":
            out.append({k: res[k] for k in SEARCH_PARAMETER_FIELDS if k in res})
    return out


def compartment(source: Path) -> dict[str, Any]:
    data = json.loads((source / "fhir-r4" / "compartmentdefinition-patient.json").read_bytes())
    return {
        "resourceType": "CompartmentDefinition",
        "url": data.get("url"),
        "code": data.get("code"),
        "resource": [
            {"code": r["code"], **({"param": r["param"]} if r.get("param") else {})} for r in data.get("resource", [])
        ],
    }


def nictiz(source: Path) -> list[dict[str, Any]]:
    from hub.fhir.xml import xml_to_json

    folder = source / "nictiz" / "Nictiz-R4-zib2020" / "resources"
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*.xml")):
        resource = xml_to_json(path.read_bytes())
        if resource.get("resourceType") in ("StructureDefinition", "ValueSet", "CodeSystem", "NamingSystem"):
            key = resource.get("url") or f"{resource['resourceType']}/{resource.get('id')}"
            out.setdefault(key, _compact(resource))
    return [out[k] for k in sorted(out)]


def run(source: Path, repo: Path) -> None:
    target = repo / "hub" / "definitions"
    params = search_parameters(source)
    _write_gz(target / "r4" / "search-parameters.json.gz", params)
    (target / "r4").mkdir(parents=True, exist_ok=True)
    (target / "r4" / "compartment-patient.json").write_text(
        json.dumps(compartment(source), indent=1, ensure_ascii=False) + "\n"
    )
    resources = nictiz(source)
    _write_gz(target / "nictiz" / "zib2020.json.gz", resources)
    print(f"  {len(params)} search parameters, {len(resources)} Nictiz conformance resources")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    run(Path(sys.argv[1]), Path(__file__).resolve().parents[2])
