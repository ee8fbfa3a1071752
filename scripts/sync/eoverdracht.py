"""Copy the eOverdracht 4.0 (FHIR STU3) profiles and examples into the repository, as compact JSON.

- the StructureDefinitions the STU3 side validates against become package data of the wijkverpleging
  adapter (``adapters/wijkverpleging/data/eoverdracht-profiles.json``: url, type, base and differential);
- the Task-state examples (``Task resources/``) and the two example transfers (``Examples/Kwalificatie 1.1b``
  and ``Examples/Patient 1.1``, every resource of each) become test data (``tests/data/eoverdracht/``).

With a checkout of Nictiz's Nictiz-STU3-Zib2017 (the zib2017 package the eOverdracht package depends on,
CC0 like it) as a second argument, the nl-core STU3 profiles the eOverdracht profiles point at for the client,
organisations and professionals (:data:`NL_CORE`) become package data too
(``adapters/wijkverpleging/data/nl-core-stu3-profiles.json``); without it that file is left as it is.

The Task-state examples as published are not all valid FHIR (backslashes in references, ``valuereference``,
status codes ``on hold``/``ON-HOLD``/``rjected``, a TestScript date variable and an unclosed tag); the repairs
are listed in :data:`REPAIRS` and applied before parsing, so that what is committed is the examples' evident
intent. The qualification TestScripts are not copied (they carry no licence).
Run: ``python scripts/sync/eoverdracht.py ../shared/reference`` (or through scripts/sync_reference.py).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

#: (pattern, replacement, why) applied to the Task-state examples' XML text before parsing.
REPAIRS: tuple[tuple[str, str, str], ...] = (
    (r'(value="\$\{DATE, T, D, \+1\}")\s*\n', r"\1/>\n", "unclosed tag"),
    (r'(reference value="\w+)\\', r"\1/", "backslash in a relative reference"),
    (r"<valuereference>", "<valueReference>", "element name case"),
    (r"</valuereference>", "</valueReference>", "element name case"),
    (r'<status value="(?:on hold|ON-HOLD)"/>', '<status value="on-hold"/>', "task-status code spelling"),
    (r'<status value="rjected"/>', '<status value="rejected"/>', "task-status code spelling"),
)

#: The nl-core (zib2017) STU3 profiles the adapter checks the hub's own records against before its STU3 facade
#: claims them (``adapters/wijkverpleging/profiles.py``), in ``Profiles - ZIB 2017/`` of Nictiz-STU3-Zib2017.
NL_CORE = ("nl-core-patient", "nl-core-organization", "nl-core-practitioner", "nl-core-practitionerrole")
TRANSFERS = {"kwalificatie-1.1b": "Kwalificatie 1.1b", "patient-1.1": "Patient 1.1"}


def _parse(xml: str) -> dict[str, Any]:
    """STU3 XML to STU3 JSON, through the fhir.resources STU3 models (which also checks it)."""
    from fhir.resources.STU3 import get_fhir_model_class
    from lxml import etree

    raw = xml.encode("utf-8")
    root = etree.fromstring(raw)
    model = get_fhir_model_class(etree.QName(root).localname)
    resource: dict[str, Any] = json.loads(model.model_validate_xml(raw).model_dump_json(exclude_none=True))
    return resource


#: The examples carry TestScript date variables (``${DATE, T, Y, -10}``: T shifted by an amount of a unit);
#: they are resolved against this fixed day so that the committed data is valid and stable.
T = date(2026, 1, 1)
_DATE_VARIABLE = re.compile(r"\$\{DATE, T(?:, ([YMDd]), ([+-]?\d+))?\}")
_UNITS = {"Y": "years", "M": "months", "D": "days", "d": "days"}


def _resolve_dates(xml: str) -> str:
    def shifted(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return T.isoformat()
        return (T + relativedelta(**{_UNITS[m.group(1)]: int(m.group(2))})).isoformat()

    return _DATE_VARIABLE.sub(shifted, xml)


def _repair(xml: str) -> str:
    for pattern, replacement, _why in REPAIRS:
        xml = re.sub(pattern, replacement, xml)
    return xml


def _compact_profile(sd: dict[str, Any]) -> dict[str, Any]:
    keep = ("url", "name", "version", "type", "baseDefinition", "derivation")
    elements = [
        {k: v for k, v in e.items() if k not in ("definition", "comment", "requirements", "alias", "mapping")}
        for e in (sd.get("differential") or {}).get("element", [])
    ]
    return {**{k: sd[k] for k in keep if k in sd}, "differential": elements}


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n", "utf-8")


def run_nl_core(zib2017: Path, repo: Path) -> None:
    """The :data:`NL_CORE` profiles from a Nictiz-STU3-Zib2017 checkout into the adapter's package data."""
    folder = zib2017 / "Profiles - ZIB 2017"
    profiles = [_compact_profile(_parse((folder / f"{name}.xml").read_text("utf-8"))) for name in NL_CORE]
    _write(repo / "adapters" / "wijkverpleging" / "data" / "nl-core-stu3-profiles.json", profiles)


def run(shared_reference: Path, repo: Path) -> None:
    source = shared_reference / "nictiz" / "Nictiz-STU3-eOverdracht"
    data_out = repo / "adapters" / "wijkverpleging" / "data"
    tests_out = repo / "tests" / "data" / "eoverdracht"
    data_out.mkdir(parents=True, exist_ok=True)
    tests_out.mkdir(parents=True, exist_ok=True)

    profiles = [_compact_profile(_parse(p.read_text("utf-8"))) for p in sorted((source / "Profiles").glob("*.xml"))]
    _write(data_out / "eoverdracht-profiles.json", profiles)

    states = {
        p.stem: _parse(_resolve_dates(_repair(p.read_text("utf-8"))))
        for p in sorted((source / "Task resources").glob("*.xml"))
    }
    _write(tests_out / "task-states.json", states)

    for name, folder in TRANSFERS.items():
        resources = [
            _parse(_resolve_dates(p.read_text("utf-8"))) for p in sorted((source / "Examples" / folder).glob("*.xml"))
        ]
        _write(tests_out / f"transfer-{name}.json", resources)

    (tests_out / "PROVENANCE.md").write_text(
        "eOverdracht 4.0 (FHIR STU3) examples copied by scripts/sync/eoverdracht.py from Nictiz's\n"
        "Nictiz-STU3-eOverdracht repository (fictitious patients), converted from XML to JSON through the\n"
        "fhir.resources STU3 models. task-states.json: the Task-state examples, with the repairs listed in\n"
        "scripts/sync/eoverdracht.py REPAIRS. transfer-*.json: every resource of the two example transfers.\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python scripts/sync/eoverdracht.py SHARED_REFERENCE_DIR [NICTIZ_STU3_ZIB2017_DIR]")
    run(Path(sys.argv[1]), Path(__file__).resolve().parents[2])
    if len(sys.argv) == 3:
        run_nl_core(Path(sys.argv[2]), Path(__file__).resolve().parents[2])
