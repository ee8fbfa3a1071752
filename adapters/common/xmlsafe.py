"""Parsing untrusted XML: no DTDs, no entities, no network, bounded size and depth."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from adapters.common.errors import UnsafeXml

_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class XmlLimits:
    max_bytes: int = 1_000_000
    max_depth: int = 32
    max_elements: int = 20_000


def parse_xml(data: bytes, limits: XmlLimits | None = None) -> etree._Element:
    """The root element of ``data``; :class:`UnsafeXml` for anything too big, deep or with a DTD."""
    limits = limits or XmlLimits()
    if len(data) > limits.max_bytes:
        raise UnsafeXml(f"message is {len(data)} bytes; the limit is {limits.max_bytes}")
    if _DTD.search(data):
        raise UnsafeXml("DOCTYPE and ENTITY declarations are not allowed")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"not well-formed XML: {exc}") from None
    count = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limits.max_elements:
            raise UnsafeXml(f"more than {limits.max_elements} elements")
        if depth > limits.max_depth:
            raise UnsafeXml(f"nesting deeper than {limits.max_depth} levels")
        stack.extend((child, depth + 1) for child in node)
    return root
