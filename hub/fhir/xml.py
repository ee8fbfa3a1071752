"""FHIR XML to FHIR JSON and back, by the rules of the R4 XML and JSON format pages.

The hub stores and reasons about FHIR JSON only; XML exists at the edge. The mapping needs type
information that the XML itself lacks (is ``given`` an array? is ``value`` a number?), which
:mod:`hub.fhir.typeinfo` provides. Decimals become :class:`decimal.Decimal` so that ``1.50``
keeps its precision. Parsing is safe: no DTDs, no entity expansion, no network.

Rules applied (http://hl7.org/fhir/R4/xml.html, json.html):
- the root element names the resource type (``resourceType`` in JSON), namespace ``http://hl7.org/fhir``;
- a primitive's value is its ``value`` attribute; its ``id`` attribute and ``extension`` children go to
  the JSON ``_name`` object (in arrays aligned with ``null``);
- ``Element.id`` and ``Extension.url`` are attributes, ``Resource.id`` is an element;
- ``Narrative.div`` is XHTML (namespace ``http://www.w3.org/1999/xhtml``), a string in JSON;
- a Resource-typed element (``contained``, ``Bundle.entry.resource``, ``Parameters.parameter.resource``)
  wraps an element named for the resource type.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

from lxml import etree

from hub.fhir.errors import BadRequest
from hub.fhir.limits import ParseLimits
from hub.fhir.typeinfo import INTEGER_TYPES, ElementInfo, TypeInfo, is_resource_type, type_info

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_F = "{" + FHIR_NS + "}"
_DIV = "{" + XHTML_NS + "}div"
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def xml_to_json(data: bytes, limits: ParseLimits | None = None) -> dict[str, Any]:
    """Parse a FHIR XML resource into its FHIR JSON form; :class:`BadRequest` (structure) if it is not one.

    With ``limits``, the element tree's depth and children per element are checked before the
    (recursive) conversion runs.
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise BadRequest("XML with a DOCTYPE or ENTITY declaration is not accepted", code="structure")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"Malformed XML: {exc}", code="structure") from None
    if limits is not None:
        _check_tree(root, limits)
    try:
        return _read_resource(root, "")
    except RecursionError:
        raise BadRequest("XML nested too deeply", code="too-costly") from None


def _check_tree(root: Any, limits: ParseLimits) -> None:
    """Depth and children per element, iteratively (the conversion itself recurses)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        elem, depth = stack.pop()
        if depth > limits.max_depth:
            raise BadRequest(
                f"XML nested deeper than the limit of {limits.max_depth} levels (at <{etree.QName(elem).localname}>)",
                code="too-costly",
            )
        children = len(elem)
        if children > limits.max_array:
            raise BadRequest(
                f"<{etree.QName(elem).localname}> has {children} child elements, over the limit of {limits.max_array}",
                code="too-costly",
            )
        stack.extend((child, depth + 1) for child in elem if isinstance(child.tag, str))


def json_to_xml(resource: dict[str, Any], pretty: bool = False) -> bytes:
    """Serialize a FHIR JSON resource as FHIR XML (UTF-8, with declaration), elements in spec order."""
    root = _write_resource(None, resource, "")
    body: bytes = etree.tostring(root, encoding="UTF-8", pretty_print=pretty)
    return _DECLARATION + body


def _parser() -> etree.XMLParser:
    # A parser per call: cheap (~2 µs), and lxml parsers must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
        huge_tree=False,
        collect_ids=False,
    )


def _structure(message: str, expression: str) -> BadRequest:
    return BadRequest(message, code="structure", expression=expression or None)


# ----------------------------------------------------------------------------------------- XML -> JSON


def _local(elem: Any, path: str) -> str:
    tag = elem.tag
    if not isinstance(tag, str):
        raise _structure("Unexpected XML node (entity reference?)", path)
    if not tag.startswith(_F):
        name = etree.QName(tag).localname
        where = f"{path}.{name}" if path else name
        raise _structure(f"Element '{where}' is not in the FHIR namespace ({FHIR_NS})", where)
    return tag[len(_F) :]


def _no_text(text: str | None, path: str) -> None:
    if text is not None and not text.isspace():
        raise _structure(f"Text content is not allowed in '{path}' (found {text.strip()[:40]!r})", path)


def _read_resource(elem: Any, path: str) -> dict[str, Any]:
    name = _local(elem, path)
    where = f"{path}.{name}" if path else name
    if not is_resource_type(name):
        raise _structure(f"'{name}' is not a FHIR R4 resource type", where)
    info = type_info(name)
    if info is None:
        raise _structure(f"Resource type '{name}' is not supported by this server", where)
    out: dict[str, Any] = {"resourceType": name}
    _read_children(elem, info, name if not path else path, out)
    return out


def _read_children(elem: Any, info: TypeInfo, path: str, out: dict[str, Any]) -> None:
    for key, value in elem.items():
        if key == "id" and not info.is_resource:
            out["id"] = value
        elif key == "url" and info.name == "Extension":
            out["url"] = value
        elif not key.startswith("{"):  # xsi:schemaLocation, xml:lang and the like are not FHIR content
            raise _structure(f"Attribute '{key}' is not allowed on '{path}'", path)
    if elem.text is not None and not elem.text.isspace():
        _no_text(elem.text, path)
    elements = info.elements
    counts: dict[str, int] = {}
    exts: dict[str, list[Any]] = {}
    choices: dict[str, str] = {}
    for child in elem:
        if child.tail is not None and not child.tail.isspace():
            _no_text(child.tail, path)
        if child.tag == _DIV and info.name == "Narrative":
            name = "div"
        else:
            name = _local(child, path)
        e = elements.get(name)
        if e is None or (name == "id" and not info.is_resource) or (name == "url" and info.name == "Extension"):
            raise _structure(f"Unknown element '{path}.{name}'", f"{path}.{name}")
        n = counts.get(name, 0)
        counts[name] = n + 1
        if n and not e.is_list:
            raise _structure(f"Element '{path}.{name}' may occur only once", f"{path}.{name}")
        if e.choice is not None:
            other = choices.setdefault(e.choice, name)
            if other != name:
                raise _structure(f"Both '{other}' and '{name}' given for {path}.{e.choice}[x]", f"{path}.{name}")
        where = f"{path}.{name}[{n}]" if e.is_list else f"{path}.{name}"
        if e.is_primitive:
            value, ext = _read_primitive(child, e, where)
            if e.is_list:
                out.setdefault(name, []).append(value)
                exts.setdefault(name, []).append(ext)
            else:
                if value is not None:
                    out[name] = value
                if ext is not None:
                    out["_" + name] = ext
            continue
        if e.fhir_type == "Resource":
            value = _read_wrapped_resource(child, where)
        else:
            sub = type_info(e.type_name)
            assert sub is not None, e.type_name
            value = {}
            _read_children(child, sub, where, value)
            if not value:
                raise _structure(f"Element '{where}' is empty", where)
        if e.is_list:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    for name, ext_list in exts.items():
        if all(v is None for v in out[name]):
            del out[name]
        if any(x is not None for x in ext_list):
            out["_" + name] = ext_list


def _read_wrapped_resource(elem: Any, path: str) -> dict[str, Any]:
    if elem.attrib:
        raise _structure(f"Attributes are not allowed on '{path}'", path)
    if elem.text is not None and not elem.text.isspace():
        _no_text(elem.text, path)
    children = list(elem)
    if len(children) != 1:
        raise _structure(f"'{path}' must hold exactly one resource", path)
    _no_text(children[0].tail, path)
    return _read_resource(children[0], path)


def _read_primitive(elem: Any, e: ElementInfo, path: str) -> tuple[Any, dict[str, Any] | None]:
    if e.fhir_type == "xhtml":
        return _read_xhtml(elem, path), None
    value: Any = None
    ext: dict[str, Any] = {}
    for key, raw in elem.items():
        if key == "value":
            value = _convert(raw, e.fhir_type, path)
        elif key == "id":
            ext["id"] = raw
        elif not key.startswith("{"):
            raise _structure(f"Attribute '{key}' is not allowed on '{path}'", path)
    if elem.text is not None and not elem.text.isspace():
        _no_text(elem.text, path)
    extensions = []
    info = type_info("Extension")
    assert info is not None
    for i, child in enumerate(elem):
        if child.tail is not None and not child.tail.isspace():
            _no_text(child.tail, path)
        name = _local(child, path)
        if name != "extension":
            raise _structure(f"Unknown element '{path}.{name}'", f"{path}.{name}")
        item: dict[str, Any] = {}
        _read_children(child, info, f"{path}.extension[{i}]", item)
        extensions.append(item)
    if extensions:
        ext["extension"] = extensions
    if value is None and not ext:
        raise _structure(f"Element '{path}' has neither a value nor extensions", path)
    return value, ext or None


def _convert(raw: str, fhir_type: str, path: str) -> Any:
    if fhir_type == "boolean":
        if raw == "true":
            return True
        if raw == "false":
            return False
        raise _structure(f"Invalid boolean {raw!r} at '{path}'", path)
    if fhir_type in INTEGER_TYPES:
        if not _INTEGER.fullmatch(raw):
            raise _structure(f"Invalid {fhir_type} {raw!r} at '{path}'", path)
        return int(raw)
    if fhir_type == "decimal":
        if not _DECIMAL.fullmatch(raw):
            raise _structure(f"Invalid decimal {raw!r} at '{path}'", path)
        return Decimal(raw)
    if not raw:
        raise _structure(f"Empty value attribute at '{path}'", path)
    return raw


def _read_xhtml(elem: Any, path: str) -> str:
    if elem.tag != _DIV:
        raise _structure(f"'{path}' must be an XHTML div (namespace {XHTML_NS})", path)
    clean = _clean_xhtml(elem)
    return str(etree.tostring(clean, encoding="unicode", with_tail=False))


def _clean_xhtml(elem: Any) -> Any:
    """A copy of the div declaring only the namespaces it uses, XHTML as the default one."""
    if elem.prefix is None:
        clean = copy.deepcopy(elem)
    else:
        clean = _rebuild(elem, None)
    etree.cleanup_namespaces(clean)
    return clean


def _rebuild(elem: Any, parent: Any) -> Any:
    if parent is None:
        node = etree.Element(elem.tag, attrib=dict(elem.attrib), nsmap={None: XHTML_NS})
    else:
        node = etree.SubElement(parent, elem.tag, attrib=dict(elem.attrib))
    node.text, node.tail = elem.text, elem.tail if parent is not None else None
    for child in elem:
        if isinstance(child.tag, str):
            _rebuild(child, node)
    return node


# ----------------------------------------------------------------------------------------- JSON -> XML


def _write_resource(parent: Any, resource: Any, path: str) -> Any:
    if not isinstance(resource, dict):
        raise _structure(f"Expected a resource object at '{path or '(root)'}'", path)
    name = resource.get("resourceType")
    where = path or str(name)
    if not isinstance(name, str) or not is_resource_type(name):
        raise _structure(f"Unknown or missing resourceType {name!r}", where)
    info = type_info(name)
    if info is None:
        raise _structure(f"Resource type '{name}' is not supported by this server", where)
    if parent is None:
        elem = etree.Element(_F + name, nsmap={None: FHIR_NS})
    else:
        elem = etree.SubElement(parent, _F + name)
    _write_children(elem, resource, info, where)
    return elem


def _write_children(elem: Any, obj: Any, info: TypeInfo, path: str) -> None:
    if not isinstance(obj, dict):
        raise _structure(f"Expected an object at '{path}'", path)
    order = info.order
    names: dict[str, int] = {}
    for key in obj:
        name = key[1:] if key[:1] == "_" else key
        pos = order.get(name)
        if pos is None:
            if key == "resourceType" and info.is_resource or key == "fhir_comments":
                continue
            raise _structure(f"Unknown element '{path}.{key}'", f"{path}.{key}")
        names[name] = pos
    elements = info.elements
    for name in sorted(names, key=names.__getitem__):
        e = elements[name]
        value = obj.get(name)
        if not info.is_resource and (name == "id" or name == "url" and info.name == "Extension"):
            if not isinstance(value, str):
                raise _structure(f"'{path}.{name}' must be a string", f"{path}.{name}")
            elem.set(name, value)
            continue
        if e.is_primitive:
            _write_primitive(elem, e, value, obj.get("_" + name), f"{path}.{name}")
            continue
        if value is None:
            raise _structure(f"'{path}.{name}' is null", f"{path}.{name}")
        items = value if e.is_list else (value,)
        if e.is_list and not isinstance(value, list) or not e.is_list and isinstance(value, list):
            raise _structure(f"'{path}.{name}' must {'' if e.is_list else 'not '}be an array", f"{path}.{name}")
        for i, item in enumerate(items):
            where = f"{path}.{name}[{i}]" if e.is_list else f"{path}.{name}"
            child = etree.SubElement(elem, _F + name)
            if e.fhir_type == "Resource":
                _write_resource(child, item, where)
            else:
                sub = type_info(e.type_name)
                assert sub is not None, e.type_name
                _write_children(child, item, sub, where)


def _write_primitive(elem: Any, e: ElementInfo, value: Any, ext: Any, path: str) -> None:
    if e.fhir_type == "xhtml":
        if not isinstance(value, str):
            raise _structure(f"'{path}' must be an XHTML string", path)
        elem.append(_parse_xhtml(value, path))
        return
    if e.is_list:
        values = value if value is not None else []
        exts = ext if ext is not None else []
        if not isinstance(values, list) or not isinstance(exts, list):
            raise _structure(f"'{path}' must be an array", path)
        if values and exts and len(values) != len(exts):
            raise _structure(f"'{path}' and '_{path.rpartition('.')[2]}' differ in length", path)
        count = max(len(values), len(exts))
        pairs = [(values[i] if values else None, exts[i] if exts else None) for i in range(count)]
    else:
        pairs = [(value, ext)]
    ext_info = type_info("Extension")
    assert ext_info is not None
    for i, (v, x) in enumerate(pairs):
        where = f"{path}[{i}]" if e.is_list else path
        if v is None and x is None:
            raise _structure(f"'{where}' has neither a value nor extensions", where)
        child = etree.SubElement(elem, _F + e.name)
        if x is not None:
            if not isinstance(x, dict):
                raise _structure(f"'_{e.name}' must be an object at '{where}'", where)
            for k in x:
                if k not in ("id", "extension", "fhir_comments"):
                    raise _structure(f"Unknown element '{where}.{k}'", f"{where}.{k}")
            if "id" in x:
                child.set("id", str(x["id"]))
        if v is not None:
            child.set("value", _format(v, e.fhir_type, where))
        if x is not None:
            for j, item in enumerate(x.get("extension") or ()):
                node = etree.SubElement(child, _F + "extension")
                _write_children(node, item, ext_info, f"{where}.extension[{j}]")


def _format(value: Any, fhir_type: str, path: str) -> str:
    if isinstance(value, bool):
        if fhir_type != "boolean":
            raise _structure(f"'{path}' must not be a boolean", path)
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise _structure(f"'{path}' must be a primitive value, not {type(value).__name__}", path)


def _parse_xhtml(text: str, path: str) -> Any:
    try:
        div = etree.fromstring(text.encode(), _parser())
    except etree.XMLSyntaxError as exc:
        raise _structure(f"Narrative at '{path}' is not well-formed XHTML: {exc}", path) from None
    if div.tag == "div":  # no namespace given: put the whole fragment in XHTML's
        for node in div.iter():
            if isinstance(node.tag, str) and not node.tag.startswith("{"):
                node.tag = "{" + XHTML_NS + "}" + node.tag
        div = _rebuild(div, None)
    elif div.tag != _DIV:
        raise _structure(f"Narrative at '{path}' must be an XHTML div", path)
    return div


__all__ = ["FHIR_NS", "XHTML_NS", "json_to_xml", "xml_to_json"]
