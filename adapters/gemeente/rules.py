"""Checks that need no hub: BSN elfproef, period order, product catalogue, Omvang presence, overlap."""

from __future__ import annotations

import datetime as dt

from adapters.gemeente.config import Catalogue
from adapters.gemeente.messages import Node
from adapters.gemeente.retour import TECHNICAL, Finding

#: After this date a toewijzing with a ProductCode must have an Omvang and one without must not (9411/9412).
OMVANG_RULE_FROM = dt.date(2020, 12, 31)


def elfproef(bsn: str | None) -> bool:
    """The BSN 11-test: 9 digits, sum of digit x weight (9..2, last -1) divisible by 11, not all zero."""
    if bsn is None or len(bsn) != 9 or not bsn.isdigit() or bsn == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(bsn[:8], range(9, 1, -1), strict=True)) - int(bsn[8])
    return total % 11 == 0


def check_bsn(client: Node) -> list[Finding]:
    bsn = client.text("Bsn")
    if not elfproef(bsn):
        return [Finding(TECHNICAL, f"Bsn {bsn} fails the elfproef (11-test)", client.el)]
    return []


def check_period(node: Node, start: str, end: str) -> list[Finding]:
    begin, einde = node.date(start), node.date(end)
    if begin and einde and einde < begin:
        return [Finding(TECHNICAL, f"{end} {einde} lies before {start} {begin}", node.el)]
    return []


def check_product(node: Node, catalogue: Catalogue, path: str = "Product") -> list[Finding]:
    categorie, code = node.text(f"{path}/Categorie"), node.text(f"{path}/Code")
    if categorie and not catalogue.allows(categorie, code):
        return [Finding("S329", f"ProductCode {code} is not a product of category {categorie}", node.el)]
    return []


def check_omvang(node: Node, end: str = "Einddatum") -> list[Finding]:
    code, omvang, einde = node.text("Product/Code"), node.node("Omvang"), node.date(end)
    if code and omvang is None:
        return [Finding("9411", f"Omvang is empty while Product Code {code} is filled", node.el)]
    open_ended = einde is None or einde > OMVANG_RULE_FROM
    if node.node("Product") is not None and not code and omvang is not None and open_ended:
        return [Finding("9412", "Omvang is filled while Product Code is empty", node.el)]
    return []


def check_overlap(products: list[Node], start: str = "Ingangsdatum", end: str = "Einddatum") -> list[Finding]:
    """The same product (category + code) twice with overlapping periods in one message (9361)."""
    out: list[Finding] = []
    seen: list[tuple[tuple[str | None, str | None], dt.date, dt.date, Node]] = []
    for p in products:
        key = (p.text("Product/Categorie"), p.text("Product/Code"))
        if key == (None, None):
            continue
        lo, hi = p.date(start) or dt.date.min, p.date(end) or dt.date.max
        for other_key, olo, ohi, _ in seen:
            if other_key == key and lo <= ohi and olo <= hi:
                out.append(Finding("9361", f"product {key[0]}/{key[1]} occurs twice with overlapping periods", p.el))
                break
        seen.append((key, lo, hi, p))
    return out


def check_unique_numbers(products: list[Node]) -> list[Finding]:
    out: list[Finding] = []
    seen: set[str] = set()
    for p in products:
        nummer = p.text("ToewijzingNummer")
        if nummer in seen:
            out.append(Finding("9332", f"ToewijzingNummer {nummer} occurs twice in the message", p.el))
        if nummer:
            seen.add(nummer)
    return out


def check_dagtekening(header: Node, today: dt.date) -> list[Finding]:
    dagtekening = header.date("BerichtIdentificatie/Dagtekening")
    if dagtekening and dagtekening > today:
        return [Finding("8848", f"Dagtekening {dagtekening} lies after today ({today})", None)]
    return []
