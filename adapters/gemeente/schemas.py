"""The official iWmo 3.2 XSDs (package data) and validation against them."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from lxml import etree

BASIS_NS = "http://www.istandaarden.nl/iwmo/3_2/basisschema/schema"


def namespace(number: str) -> str:
    """The namespace of message WMO``number``."""
    return f"http://www.istandaarden.nl/iwmo/3_2/wmo{number}/schema"


def _schema_dir() -> Path:
    return Path(str(resources.files("adapters.gemeente").joinpath("data/iwmo32")))


@cache
def schema(number: str) -> etree.XMLSchema:
    """The compiled schema of WMO``number`` (imports resolved from package data only)."""
    path = _schema_dir() / f"WMO{number}.xsd"
    if not path.is_file():
        raise KeyError(number)
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def validate(number: str, root: etree._Element) -> list[str]:
    """The schema errors of ``root`` as message WMO``number`` (empty when valid)."""
    s = schema(number)
    if s.validate(root):
        return []
    return [f"line {e.line}: {e.message}" for e in s.error_log]


@cache
def class_elements(number: str) -> frozenset[str]:
    """Local names of the elements that carry ``RetourCodes`` in retour message WMO``number``."""
    xs = "{http://www.w3.org/2001/XMLSchema}"
    tree = etree.parse(str(_schema_dir() / f"WMO{number}.xsd"), etree.XMLParser(no_network=True))
    with_codes = set()
    for ctype in tree.iter(f"{xs}complexType"):
        if any(el.get("name") == "RetourCodes" for el in ctype.iter(f"{xs}element")) and ctype.get("name") != "Header":
            with_codes.add(ctype.get("name"))
    names = set()
    for el in tree.iter(f"{xs}element"):
        type_name = (el.get("type") or "").split(":")[-1]
        if type_name in with_codes and el.get("name"):
            names.add(str(el.get("name")))
    return frozenset(names)
