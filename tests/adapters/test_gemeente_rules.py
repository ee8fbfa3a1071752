"""Broken messages get the right RetourCode on the right class and change nothing in the hub;
repeated messages change nothing and get the same retour; older messages are not applied."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from adapters.common.client import HubClient
from adapters.gemeente import codes as c
from tests.adapters.conftest import DATA, LiveNetwork
from tests.adapters.helpers import fresh_number, processor, retour_codes_at, snapshot
from tests.adapters.iwmo_builders import Client, Product, valid_bsns, wmo301

BSNS = iter(valid_bsns(200, start=123400000))


@dataclass
class Case:
    name: str
    make: Callable[[str], bytes]  # number -> message
    code: str
    where: str  # class element that carries the code ("Header" for the header)
    status: str = "rejected"


def _simple(nummer: str, **kw: object) -> bytes:
    product = Product(nummer, **kw)  # type: ignore[arg-type]
    return wmo301(f"B{nummer}", Client(bsn=next(BSNS)), [product])


def _example(transform: Callable[[bytes], bytes]) -> Callable[[str], bytes]:
    return lambda n: transform((DATA / "WMO301.xml").read_bytes().replace(b">101<", f">{n}<".encode()))


CASES = [
    Case(
        "xsd: unknown element",
        _example(
            lambda d: d.replace(b"<wmo301:Commentaar>Client", b"<wmo301:Fout>x</wmo301:Fout><wmo301:Commentaar>Client")
        ),
        "0001",
        "Header",
        "technical",
    ),
    Case(
        "xsd: BSN of 8 digits",
        _example(lambda d: d.replace(b">999900006<", b">99990000<")),
        "0001",
        "Header",
        "technical",
    ),
    Case("xsd: unknown product category", lambda n: _simple(n, categorie="99"), "0001", "Header", "technical"),
    Case("xsd: unknown eenheid", lambda n: _simple(n, omvang=(4, "99", "2")), "0001", "Header", "technical"),
    Case(
        "xsd: ToewijzingNummer not a number",
        lambda n: _simple(n).replace(f">{n}<".encode(), b">12AB<"),
        "0001",
        "Header",
        "technical",
    ),
    Case("xsd: date not a date", lambda n: _simple(n, ingang="2025-13-45"), "0001", "Header", "technical"),
    Case("xsd: wrong BerichtCode", lambda n: _simple(n).replace(b">414<", b">999<"), "0001", "Header", "technical"),
    Case(
        "xsd: missing Toewijzingstijd",
        lambda n: _simple(n).replace(b"<wmo301:Toewijzingstijd>10:00:00</wmo301:Toewijzingstijd>", b""),
        "0001",
        "Header",
        "technical",
    ),
    Case("xsd: volume negative", lambda n: _simple(n, omvang=(-4, "04", "2")), "0001", "Header", "technical"),
    Case("elfproef", lambda n: wmo301(f"B{n}", Client(bsn="123456789"), [Product(n)]), "0001", "Client"),
    Case("elfproef all zero", lambda n: wmo301(f"B{n}", Client(bsn="000000000"), [Product(n)]), "0001", "Client"),
    Case(
        "Einddatum before Ingangsdatum",
        lambda n: _simple(n, ingang="2025-06-01", eind="2025-05-31"),
        "0001",
        "ToegewezenProduct",
    ),
    Case("unknown product code", lambda n: _simple(n, code="99Z99"), "S329", "ToegewezenProduct"),
    Case(
        "product code of another category",
        lambda n: _simple(n, categorie="02", code="01A01"),
        "S329",
        "ToegewezenProduct",
    ),
    Case("code without Omvang", lambda n: _simple(n, omvang=None), "9411", "ToegewezenProduct"),
    Case("Omvang without code", lambda n: _simple(n, code=None), "9412", "ToegewezenProduct"),
    Case(
        "dagtekening in the future",
        lambda n: wmo301(f"B{n}", Client(bsn=next(BSNS)), [Product(n)], dagtekening="2099-01-01"),
        "8848",
        "Header",
    ),
    Case(
        "ToewijzingNummer twice",
        lambda n: wmo301(f"B{n}", Client(bsn=next(BSNS)), [Product(n), Product(n, code="01A02")]),
        "9332",
        "ToegewezenProduct",
    ),
    Case(
        "overlapping same product",
        lambda n: wmo301(
            f"B{n}", Client(bsn=next(BSNS)), [Product(n), Product(str(int(n) + 50000), ingang="2025-06-01")]
        ),
        "9361",
        "ToegewezenProduct",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_broken_301_gets_its_code_and_changes_nothing(
    case: Case, live_network: LiveNetwork, hub_client: HubClient
) -> None:
    proc = processor(live_network, hub_client)
    before = await snapshot(hub_client)
    result = await proc.process(case.make(fresh_number()))
    assert result.status == case.status, result.reasons
    assert result.retour is not None and result.reasons
    codes = retour_codes_at(result.retour)
    assert case.code in codes[case.where], codes
    if case.where != "Header":
        assert codes["Header"] == ["0200"]
    assert await snapshot(hub_client) == before


async def test_unreadable_input_is_refused_without_touching_the_hub(
    live_network: LiveNetwork, hub_client: HubClient
) -> None:
    proc = processor(live_network, hub_client)
    before = await snapshot(hub_client)
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
    )
    external = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    for data, reason in [
        (bomb, "DOCTYPE"),
        (external, "DOCTYPE"),
        (b"<not xml", "well-formed"),
        (b"<a>" * 100 + b"</a>" * 100, "deeper"),
        (b"<x/>", "not an iWmo"),
        (b" " * 1_000_001, "limit"),
    ]:
        result = await proc.process(data)
        assert result.status == "unreadable" and result.retour is None
        assert reason in result.reasons[0], result.reasons
    assert await snapshot(hub_client) == before


async def test_same_message_twice_same_retour_nothing_changes(live_network: LiveNetwork, hub_client: HubClient) -> None:
    proc = processor(live_network, hub_client)
    nummer = fresh_number()
    message = wmo301(f"D{nummer}", Client(bsn=next(BSNS)), [Product(nummer)])
    first = await proc.process(message)
    assert first.status == "accepted"
    after_first = await snapshot(hub_client)
    second = await proc.process(message)
    assert second.retour == first.retour and second.replayed
    # The same content under a new BerichtIdentificatie (a resend): accepted, nothing written again.
    resent = await proc.process(message.replace(f">D{nummer}<".encode(), f">E{nummer}<".encode()))
    assert resent.status == "accepted" and retour_codes_at(resent.retour or b"")["ToegewezenProduct"] == ["0200"]
    # A fresh adapter state (its file lost): the hub writes are idempotent on their own.
    fresh = processor(live_network, hub_client)
    assert (await fresh.process(message)).status == "accepted"
    assert await snapshot(hub_client) == after_first


async def test_identification_reused_for_other_content_is_9056(
    live_network: LiveNetwork, hub_client: HubClient
) -> None:
    proc = processor(live_network, hub_client)
    nummer = fresh_number()
    bsn = next(BSNS)
    assert (await proc.process(wmo301(f"F{nummer}", Client(bsn=bsn), [Product(nummer)]))).status == "accepted"
    before = await snapshot(hub_client)
    other = await proc.process(wmo301(f"F{nummer}", Client(bsn=bsn), [Product(nummer, eind="2025-10-31")]))
    assert other.status == "rejected"
    assert retour_codes_at(other.retour or b"")["Header"] == ["9056"]
    assert await snapshot(hub_client) == before


async def test_older_allocation_is_refused_not_applied(live_network: LiveNetwork, hub_client: HubClient) -> None:
    proc = processor(live_network, hub_client)
    nummer, bsn = fresh_number(), next(BSNS)
    newer = wmo301(f"G{nummer}", Client(bsn=bsn), [Product(nummer, eind="2025-06-30", datum="2025-02-01")])
    older = wmo301(f"H{nummer}", Client(bsn=bsn), [Product(nummer, eind="2025-12-31", datum="2025-01-01")])
    assert (await proc.process(newer)).status == "accepted"
    before = await snapshot(hub_client)
    refused = await proc.process(older)
    assert refused.status == "rejected"
    assert retour_codes_at(refused.retour or b"")["ToegewezenProduct"] == ["9074"]
    assert await snapshot(hub_client) == before
    sr = (await hub_client.search("ServiceRequest", {"toewijzing-nummer": nummer}))[0]
    assert sr["occurrencePeriod"]["end"] == "2025-06-30"
    # A later change (RedenWijziging 05: verkorting) is applied as a new version.
    later = wmo301(f"I{nummer}", Client(bsn=bsn), [Product(nummer, eind="2025-05-31", datum="2025-03-01", reden="05")])
    assert (await proc.process(later)).status == "accepted"
    sr = (await hub_client.search("ServiceRequest", {"toewijzing-nummer": nummer}))[0]
    assert sr["occurrencePeriod"]["end"] == "2025-05-31" and sr["meta"]["versionId"] == "2"
    assert sr["reasonCode"][0]["coding"][0]["code"] == "05"


async def test_toewijzing_number_of_another_client_is_9332(live_network: LiveNetwork, hub_client: HubClient) -> None:
    proc = processor(live_network, hub_client)
    nummer = fresh_number()
    assert (await proc.process(wmo301(f"J{nummer}", Client(bsn=next(BSNS)), [Product(nummer)]))).status == "accepted"
    before = await snapshot(hub_client)
    clash = await proc.process(wmo301(f"K{nummer}", Client(bsn=next(BSNS)), [Product(nummer, datum="2025-01-02")]))
    assert retour_codes_at(clash.retour or b"")["ToegewezenProduct"] == ["9332"]
    assert await snapshot(hub_client) == before


def _start_stop(
    number: str, nummer: str, bsn: str, *, begin: str, einde: str | None = None, status: str = "1", ident: str = "S1"
) -> bytes:
    data = (DATA / f"WMO{number}.xml").read_text()
    data = (
        data.replace("999900006", bsn).replace(">123456789013<", f">{ident}<").replace(">123456789014<", f">{ident}<")
    )
    # keep the first product only, renumbered
    start_tag, end_tag = (
        ("<wmo305:StartProduct>", "</wmo305:StartProduct>")
        if number == "305"
        else ("<wmo307:StopProduct>", "</wmo307:StopProduct>")
    )
    first = data.index(start_tag)
    second = data.index(start_tag, first + 1)
    last_end = data.rindex(end_tag) + len(end_tag)
    data = data[:second] + data[last_end:]
    data = data.replace(">300201<", f">{nummer}<").replace(">2025-04-03<", f">{begin}<")
    data = data.replace("<wmo305:StatusAanlevering>1<", f"<wmo305:StatusAanlevering>{status}<")
    data = data.replace("<wmo307:StatusAanlevering>1<", f"<wmo307:StatusAanlevering>{status}<")
    if einde:
        data = data.replace(">2025-07-18<", f">{einde}<")
    return data.encode()


START_STOP_CASES = [
    ("305 unknown toewijzing", "305", dict(begin="2025-04-03"), False, "9019", "StartProduct"),
    ("305 before the toewijzing", "305", dict(begin="2025-03-01"), True, "9307", "StartProduct"),
    ("307 without a start", "307", dict(begin="2025-04-03", einde="2025-05-01"), True, "9069", "StopProduct"),
    (
        "307 Einddatum before Begindatum",
        "307",
        dict(begin="2025-04-03", einde="2025-04-01"),
        True,
        "0001",
        "StopProduct",
    ),
    (
        "307 Einddatum after the toewijzing",
        "307",
        dict(begin="2025-04-03", einde="2026-02-01"),
        True,
        "9308",
        "StopProduct",
    ),
]


@pytest.mark.parametrize("case", START_STOP_CASES, ids=[c[0] for c in START_STOP_CASES])
async def test_broken_start_stop(case: tuple, live_network: LiveNetwork, hub_client: HubClient) -> None:
    _, number, kw, exists, code, where = case
    proc = processor(live_network, hub_client)
    nummer, bsn = fresh_number(), next(BSNS)
    if exists:
        setup = wmo301(
            f"L{nummer}", Client(bsn=bsn), [Product(nummer, code="01A11", ingang="2025-04-01")], ontvanger="65656055"
        )
        assert (await proc.process(setup)).status == "accepted"
    before = await snapshot(hub_client)
    result = await proc.process(_start_stop(number, nummer, bsn, ident=f"M{nummer}", **kw))
    assert result.status == "rejected", result.reasons
    assert code in retour_codes_at(result.retour or b"")[where]
    assert await snapshot(hub_client) == before


async def test_stop_before_start_out_of_order(live_network: LiveNetwork, hub_client: HubClient) -> None:
    proc = processor(live_network, hub_client)
    nummer, bsn = fresh_number(), next(BSNS)
    setup = wmo301(
        f"N{nummer}", Client(bsn=bsn), [Product(nummer, code="01A11", ingang="2025-04-01")], ontvanger="65656055"
    )
    assert (await proc.process(setup)).status == "accepted"
    assert (
        await proc.process(_start_stop("305", nummer, bsn, begin="2025-04-03", ident=f"O{nummer}"))
    ).status == "accepted"
    stop = _start_stop("307", nummer, bsn, begin="2025-04-03", einde="2025-07-18", ident=f"P{nummer}")
    assert (await proc.process(stop)).status == "accepted"
    before = await snapshot(hub_client)
    late_start = await proc.process(_start_stop("305", nummer, bsn, begin="2025-04-05", ident=f"Q{nummer}"))
    assert retour_codes_at(late_start.retour or b"")["StartProduct"] == ["9074"]
    other_stop = await proc.process(
        _start_stop("307", nummer, bsn, begin="2025-04-03", einde="2025-07-01", ident=f"R{nummer}")
    )
    assert retour_codes_at(other_stop.retour or b"")["StopProduct"] == ["9415"]
    assert await snapshot(hub_client) == before
    plan = (await hub_client.search("CarePlan", {"identifier": f"{c.TOEWIJZING_SYSTEM}|{nummer}"}))[0]
    assert plan["activity"][0]["detail"]["scheduledPeriod"] == {"start": "2025-04-03", "end": "2025-07-18"}


async def test_broken_317_319(live_network: LiveNetwork, hub_client: HubClient) -> None:
    proc = processor(live_network, hub_client)
    nummer = fresh_number()
    known = wmo301(f"T{nummer}", Client(), [Product(nummer, code="01A12")], ontvanger="65656055")
    assert (await proc.process(known)).status == "accepted"
    before = await snapshot(hub_client)
    data317 = (DATA / "WMO317.xml").read_bytes().replace(b">10072<", b">99999991<").replace(b">987654321<", b">X317A<")
    unknown = await proc.process(data317)
    assert retour_codes_at(unknown.retour or b"")["TeWijzigenProduct"] == ["9351"]
    assert retour_codes_at(unknown.retour or b"")["OngewijzigdProduct"] in (["9350"], ["0233"])
    again = await proc.process(data317)
    assert again.replayed and again.retour == unknown.retour
    data319 = (DATA / "WMO319.xml").read_bytes().replace(b">9003<", b">NOPE<")
    unknown_ref = await proc.process(data319)
    assert retour_codes_at(unknown_ref.retour or b"")["Antwoord"] == ["9355"]
    assert await snapshot(hub_client) == before


def test_enough_broken_messages() -> None:
    assert len(CASES) + len(START_STOP_CASES) + 2 + 6 >= 20


async def test_contact_persons_added_later_are_created_once(live_network: LiveNetwork, hub_client: HubClient) -> None:
    proc = processor(live_network, hub_client)
    nummer, bsn = fresh_number(), next(BSNS)
    assert (await proc.process(wmo301(f"U{nummer}", Client(bsn=bsn), [Product(nummer)]))).status == "accepted"
    with_mentor = Client(bsn=bsn, relaties=[("1", "15", "Mentor")])
    later = wmo301(f"V{nummer}", with_mentor, [Product(nummer, datum="2025-01-02")])
    assert (await proc.process(later)).status == "accepted"
    again = wmo301(f"W{nummer}", with_mentor, [Product(nummer, datum="2025-01-02")])
    assert (await proc.process(again)).status == "accepted"
    found = await hub_client.search("RelatedPerson", {"identifier": f"{c.RELATIE_SYSTEM}|{bsn}-1"})
    assert len(found) == 1 and found[0]["meta"]["versionId"] == "1"
    assert found[0]["relationship"][0]["coding"][0] == {"system": c.ROLE_SYSTEM, "code": "15", "display": "Mentor"}
