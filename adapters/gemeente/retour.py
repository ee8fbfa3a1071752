"""Retour messages (302, 306, 308, 316, 318, 320): the heen message echoed in the retour's namespace,
with the retour header fields and ``RetourCodes`` on the header and on every message class.

A technical rejection (0001: not XSD-valid) answers with the header alone. When the message is
refused for a business rule, the class that broke it carries the rule's code and every other class
0233 (not assessed: nothing of the message was applied); an accepted message has 0200 everywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lxml import etree

from adapters.gemeente import schemas
from adapters.gemeente.messages import BERICHT_CODE, RETOUR_OF

#: LDT_RetourCode values the adapter uses.
TECHNICAL = "0001"
NO_REMARKS = "0200"
NOT_ASSESSED = "0233"
HEADER_FIELDS = (
    "BerichtCode",
    "BerichtVersie",
    "BerichtSubversie",
    "Afzender",
    "Ontvanger",
    "BerichtIdentificatie",
    "XsdVersie",
)


@dataclass(frozen=True)
class Finding:
    """A broken rule: the RetourCode, what was wrong, and the class element (None: the header)."""

    code: str
    reason: str
    element: etree._Element | None = None


def build_retour(
    heen: etree._Element,
    number: str,
    findings: list[Finding],
    *,
    identificatie: str,
    today: dt.date,
    technical: bool = False,
) -> bytes:
    """The retour of heen message WMO``number`` (``heen`` is its root)."""
    retour = RETOUR_OF[number]
    ns = schemas.namespace(retour)
    old_ns = schemas.namespace(number)
    nsmap = {f"wmo{retour}": ns, "iwmo": schemas.BASIS_NS}
    classes = schemas.class_elements(retour)
    by_element: dict[etree._Element, list[str]] = {}
    header_codes: list[str] = []
    for f in findings:
        if f.element is None:
            header_codes.append(f.code)
        else:
            by_element.setdefault(f.element, []).append(f.code)
    default = NO_REMARKS if not findings else NOT_ASSESSED

    def q(local: str) -> str:
        return f"{{{ns}}}{local}"

    root = etree.Element(q("Bericht"), nsmap=nsmap)
    header = next((c for c in heen if isinstance(c.tag, str) and etree.QName(c).localname == "Header"), None)
    out_header = etree.SubElement(root, q("Header"))
    if header is not None:
        for child in header:
            if isinstance(child.tag, str) and etree.QName(child).localname in HEADER_FIELDS:
                out_header.append(_copy(child, old_ns, ns))
    code_el = next((c for c in out_header if etree.QName(c).localname == "BerichtCode"), None)
    if code_el is not None:
        code_el.text = BERICHT_CODE[retour]
    etree.SubElement(out_header, q("IdentificatieRetour")).text = identificatie
    etree.SubElement(out_header, q("DagtekeningRetour")).text = today.isoformat()
    versie = etree.SubElement(out_header, q("XsdVersieRetour"))
    etree.SubElement(versie, f"{{{schemas.BASIS_NS}}}BasisschemaXsdVersie").text = "1.0.0"
    etree.SubElement(versie, f"{{{schemas.BASIS_NS}}}BerichtXsdVersie").text = "1.0.0"
    _codes(out_header, q, header_codes or ([TECHNICAL] if technical else [NO_REMARKS]))
    if technical:
        return _serialize(root)
    for child in heen:
        if isinstance(child.tag, str) and etree.QName(child).localname != "Header":
            root.append(_copy_body(child, old_ns, ns, classes, by_element, default, q))
    return _serialize(root)


def _codes(parent: etree._Element, q: object, codes: list[str]) -> None:
    block = etree.SubElement(parent, q("RetourCodes"))  # type: ignore[operator]
    for code in dict.fromkeys(codes):
        etree.SubElement(block, q("RetourCode")).text = code  # type: ignore[operator]


def _rename(tag: str, old_ns: str, ns: str) -> str:
    qname = etree.QName(tag)
    return f"{{{ns}}}{qname.localname}" if qname.namespace == old_ns else tag


def _copy(el: etree._Element, old_ns: str, ns: str) -> etree._Element:
    out = etree.Element(_rename(el.tag, old_ns, ns))
    out.text = el.text
    for child in el:
        if isinstance(child.tag, str):
            out.append(_copy(child, old_ns, ns))
    return out


def _copy_body(
    el: etree._Element,
    old_ns: str,
    ns: str,
    classes: frozenset[str],
    by_element: dict[etree._Element, list[str]],
    default: str,
    q: object,
) -> etree._Element:
    out = etree.Element(_rename(el.tag, old_ns, ns))
    out.text = el.text
    for child in el:
        if isinstance(child.tag, str):
            out.append(_copy_body(child, old_ns, ns, classes, by_element, default, q))
    if etree.QName(el).localname in classes:
        _codes(out, q, by_element.get(el) or [default])
    return out


def _serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def retour_codes(root: etree._Element) -> list[str]:
    """Every RetourCode in a retour message (header first)."""
    return [
        str(el.text).strip()
        for el in root.iter()
        if isinstance(el.tag, str) and etree.QName(el).localname == "RetourCode" and el.text
    ]
