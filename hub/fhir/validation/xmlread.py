"""FHIR XML to FHIR JSON, driven by the R4 core definitions (private to the validator).

The validator needs the Nictiz conformance resources and examples, which exist only as XML. Which
elements repeat and which primitive type a value has is read from the core StructureDefinition
snapshots, so the conversion follows the R4 JSON rules (arrays, ``_name`` for primitive ids and
extensions, numbers and booleans as JSON values, the narrative ``div`` as a string).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from lxml import etree

from hub.fhir.validation.corepkg import core_package

FHIR_NS = "{http://hl7.org/fhir}"
XHTML_NS = "{http://www.w3.org/1999/xhtml}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False)
_NUMBER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt"})
_TYPE_SYSTEM = "http://hl7.org/fhirpath/System."


@cache
def _elements(type_name: str) -> dict[str, tuple[bool, tuple[str, ...], str | None]]:
    """path -> (repeats, type codes, contentReference path) for a core type or resource."""
    for sd in core_package()["structureDefinitions"]:
        if sd["id"] == type_name and sd.get("derivation") != "constraint":
            out: dict[str, tuple[bool, tuple[str, ...], str | None]] = {}
            for el in sd["snapshot"]["element"]:
                if ":" in el["id"]:
                    continue
                codes = tuple(_code(t["code"]) for t in el.get("type", ()))
                ref = el.get("contentReference")
                out[el["path"]] = (el.get("max") != "1", codes, ref[1:] if ref else None)
            return out
    raise KeyError(type_name)


def _code(code: str) -> str:
    return "string" if code.startswith(_TYPE_SYSTEM) else code


def xml_to_json(data: bytes) -> dict[str, Any]:
    """One FHIR resource in XML as its JSON form."""
    root = etree.fromstring(data, _PARSER)
    return resource_from_element(root)


def resource_from_element(el: Any) -> dict[str, Any]:
    """A resource element (``<Patient xmlns=...>``) as JSON."""
    rtype = etree.QName(el).localname
    out: dict[str, Any] = {"resourceType": rtype}
    _fill(el, rtype, rtype, out)
    return out


def _fill(el: Any, type_name: str, path: str, out: dict[str, Any]) -> None:
    defs = _elements(type_name)
    if "id" in el.attrib:
        out["id"] = el.attrib["id"]
    if "url" in el.attrib:
        out["url"] = el.attrib["url"]
    for child in el:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        info = defs.get(f"{path}.{name}")
        child_type: str | None = None
        if info is None:
            for i in range(len(name) - 1, 0, -1):
                if name[i].isupper():
                    choice = defs.get(f"{path}.{name[:i]}[x]")
                    if choice is not None:
                        tname = name[i:]
                        cands = [c for c in choice[1] if c.lower() == tname.lower()]
                        info, child_type = choice, (cands[0] if cands else tname)
                        break
            if info is None:
                raise ValueError(f"Unknown element '{name}' at {path}")
        repeats, codes, ref = info
        if child_type is None:
            child_type = codes[0] if len(codes) == 1 else (codes[0] if codes else "BackboneElement")
        _put(child, name, child_type, f"{path}.{name}" if ref is None else ref, type_name, repeats, out)


def _put(child: Any, name: str, ctype: str, cpath: str, owner: str, repeats: bool, out: dict[str, Any]) -> None:
    value: Any
    if ctype in ("Resource", "DomainResource"):
        inner = [c for c in child if isinstance(c.tag, str)]
        value = resource_from_element(inner[0]) if inner else {}
    elif ctype == "xhtml":
        value = etree.tostring(child, encoding="unicode", with_tail=False)
    elif ctype[:1].islower():
        raw = child.attrib.get("value")
        ext: dict[str, Any] = {}
        if "id" in child.attrib:
            ext["id"] = child.attrib["id"]
        exts = [c for c in child if isinstance(c.tag, str)]
        if exts:
            _fill(child, "Element", "Element", ext)
        _put_primitive(name, _convert(raw, ctype) if raw is not None else None, ext or None, repeats, out)
        return
    else:
        value = {}
        if ctype in ("BackboneElement", "Element") and cpath != ctype:
            _fill(child, owner, cpath, value)
        else:
            _fill(child, ctype, ctype, value)
    if repeats:
        out.setdefault(name, []).append(value)
    else:
        out[name] = value


def _put_primitive(name: str, value: Any, ext: dict[str, Any] | None, repeats: bool, out: dict[str, Any]) -> None:
    if not repeats:
        if value is not None:
            out[name] = value
        if ext:
            out["_" + name] = ext
        return
    values = out.setdefault(name, [])
    exts = out.get("_" + name)
    if ext and exts is None:
        exts = out["_" + name] = [None] * len(values)
    values.append(value)
    if exts is not None:
        exts.append(ext)


def _convert(raw: str, ctype: str) -> Any:
    if ctype == "boolean":
        return raw == "true"
    if ctype in _NUMBER_TYPES:
        return int(raw)
    if ctype == "decimal":
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    return raw
