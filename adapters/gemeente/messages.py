"""Reading iWmo messages: what kind a message is, and namespace-blind access to its elements."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

_NS = re.compile(r"^http://www\.istandaarden\.nl/iwmo/3_2/wmo(\d{3})/schema$")

#: Heen message -> its retour message.
RETOUR_OF = {"301": "302", "305": "306", "307": "308", "315": "316", "317": "318", "319": "320"}
#: Retour message -> the heen message it answers.
HEEN_OF = {v: k for k, v in RETOUR_OF.items()}
BERICHT_CODE = {
    "301": "414",
    "302": "415",
    "305": "418",
    "306": "419",
    "307": "420",
    "308": "421",
    "315": "444",
    "316": "445",
    "317": "480",
    "318": "481",
    "319": "482",
    "320": "483",
    "323": "484",
}


def message_number(root: etree._Element) -> str | None:
    """``"301"`` for a ``wmo301:Bericht`` root, None for anything else."""
    qname = etree.QName(root)
    m = _NS.match(qname.namespace or "")
    if qname.localname != "Bericht" or m is None:
        return None
    return m.group(1)


class Node:
    """An element, read by local names: ``node.text("Client/Bsn")``, ``node.all("Relaties/Relatie")``."""

    __slots__ = ("el",)

    def __init__(self, el: etree._Element) -> None:
        self.el = el

    def _walk(self, path: str) -> Iterator[etree._Element]:
        current = [self.el]
        for name in path.split("/"):
            current = [c for el in current for c in el if isinstance(c.tag, str) and etree.QName(c).localname == name]
        yield from current

    def node(self, path: str) -> Node | None:
        found = next(self._walk(path), None)
        return Node(found) if found is not None else None

    def all(self, path: str) -> list[Node]:
        return [Node(e) for e in self._walk(path)]

    def text(self, path: str) -> str | None:
        found = next(self._walk(path), None)
        if found is None or found.text is None:
            return None
        return found.text.strip()

    def date(self, path: str) -> dt.date | None:
        value = self.text(path)
        return dt.date.fromisoformat(value) if value else None

    def int(self, path: str) -> int | None:
        value = self.text(path)
        return int(value) if value else None


@dataclass(frozen=True)
class Header:
    number: str
    afzender: str
    ontvanger: str
    identificatie: str
    dagtekening: dt.date

    @property
    def key(self) -> str:
        """What must be unique per sender and message kind (rule 9056)."""
        return f"{self.number}:{self.afzender}:{self.identificatie}"


def read_header(number: str, root: Node) -> Header:
    h = root.node("Header")
    if h is None:
        raise ValueError("no Header")
    dagtekening = h.date("BerichtIdentificatie/Dagtekening")
    return Header(
        number=number,
        afzender=h.text("Afzender") or "",
        ontvanger=h.text("Ontvanger") or "",
        identificatie=h.text("BerichtIdentificatie/Identificatie") or "",
        dagtekening=dagtekening or dt.date.min,
    )
