"""Round trip: WMO301 into the hub, the provider records start and stop of care (and a request) in the
hub with its own credentials, the adapter writes WMO305/307/315 a gemeente system would accept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lxml import etree

from adapters.common.client import HubClient
from adapters.gemeente import codes as c
from adapters.gemeente import schemas
from adapters.gemeente.messages import Node
from adapters.gemeente.outbound import Outbound, Written
from tests.adapters.conftest import DATA, PROVIDER_URA, LiveNetwork
from tests.adapters.helpers import fresh_number, processor
from tests.adapters.iwmo_builders import Client, Product, valid_bsns, wmo301

PROVIDER_AGB = "65656099"
#: Care relations follow the toewijzing period: it must include today for the provider to take part.
Y = dt.date.today().year


async def _provider_org(network: LiveNetwork) -> None:
    async with network.as_org(PROVIDER_URA) as provider:
        found = (await provider.get("Organization", params={"identifier": f"{c.URA_SYSTEM}|{PROVIDER_URA}"})).json()
        if not found.get("entry"):
            r = await provider.post(
                "Organization",
                json={
                    "resourceType": "Organization",
                    "active": True,
                    "name": "Thuiszorg Samen Thuis",
                    "identifier": [
                        {"system": c.URA_SYSTEM, "value": PROVIDER_URA},
                        {"system": c.AGB_SYSTEM, "value": PROVIDER_AGB},
                    ],
                },
            )
            assert r.status_code == 201, r.text


def _read(path: Path) -> tuple[etree._Element, Node]:
    root = etree.fromstring(path.read_bytes())
    return root, Node(root)


async def test_round_trip_301_to_305_and_307(live_network: LiveNetwork, hub_client: HubClient, tmp_path: Path) -> None:
    await _provider_org(live_network)
    proc = processor(live_network, hub_client)
    nummer, bsn = fresh_number(), valid_bsns(1, start=555000000)[0]
    message = wmo301(
        f"RT{nummer}",
        Client(bsn=bsn, achternaam="Vries", voorvoegsel="de", voornamen="Peter R"),
        [Product(nummer, code="01A11", ingang=f"{Y}-01-01", eind=f"{Y + 1}-12-31")],
        ontvanger=PROVIDER_AGB,
    )
    assert (await proc.process(message)).status == "accepted"
    outbound = Outbound(hub_client, proc.state, proc.settings, tmp_path / "out")

    async def poll() -> list[Written]:  # other tests' toewijzingen share the hub: only this one's count
        return [w for w in await outbound.poll() if f":{nummer}:" in w.mark]

    assert await poll() == []  # nothing started yet

    async with live_network.as_org(PROVIDER_URA) as provider:
        plan = (await provider.get("CarePlan", params={"identifier": f"{c.TOEWIJZING_SYSTEM}|{nummer}"})).json()
        assert plan.get("entry"), f"the provider cannot read its care plan activity: {plan}"
        plan = plan["entry"][0]["resource"]
        plan["activity"][0]["detail"] |= {"status": "in-progress", "scheduledPeriod": {"start": f"{Y}-01-03"}}
        r = await provider.put(f"CarePlan/{plan['id']}", json=plan)
        assert r.status_code == 200, r.text
        started = await poll()
        assert [w.number for w in started] == ["305"]
        assert await poll() == []  # sent once

        plan = r.json()
        plan["activity"][0]["detail"] |= {
            "status": "completed",
            "scheduledPeriod": {"start": f"{Y}-01-03", "end": f"{Y}-07-18"},
            "statusReason": {"coding": [{"system": c.REDEN_BEEINDIGING_SYSTEM, "code": "31"}]},
        }
        r = await provider.put(f"CarePlan/{plan['id']}", json=plan)
        assert r.status_code == 200, r.text
    stopped = await poll()
    assert [w.number for w in stopped] == ["307"]

    root, msg = _read(started[0].path)
    assert schemas.validate("305", root) == []
    example = Node(etree.parse(str(DATA / "WMO305.xml")).getroot())
    assert msg.text("Header/Afzender") == PROVIDER_AGB and msg.text("Header/Ontvanger") == "0384"
    assert msg.text("Header/BerichtCode") == example.text("Header/BerichtCode") == "418"
    assert msg.text("Client/Bsn") == bsn
    assert msg.text("Client/Naam/Geslachtsnaam/Achternaam") == "Vries"
    assert msg.text("Client/Naam/Geslachtsnaam/Voorvoegsel") == "de"
    assert msg.text("Client/Naam/Voornamen") == "Peter R" and msg.text("Client/Naam/Voorletters") == "PR"
    item = msg.node("Client/StartProducten/StartProduct")
    assert item is not None
    assert item.text("ToewijzingNummer") == nummer
    assert (item.text("Product/Categorie"), item.text("Product/Code")) == ("01", "01A11")
    assert item.text("ToewijzingIngangsdatum") == f"{Y}-01-01" and item.text("Begindatum") == f"{Y}-01-03"
    assert item.text("StatusAanlevering") == "1"

    root, msg = _read(stopped[0].path)
    assert schemas.validate("307", root) == []
    item = msg.node("Client/StopProducten/StopProduct")
    assert item is not None
    assert item.text("ToewijzingNummer") == nummer and item.text("Begindatum") == f"{Y}-01-03"
    assert item.text("Einddatum") == f"{Y}-07-18" and item.text("RedenBeeindiging") == "31"

    # The gemeente system answers with 306/308: recorded against what was sent.
    for path, number in ((started[0].path, "305"), (stopped[0].path, "307")):
        heen = etree.fromstring(path.read_bytes())
        from adapters.gemeente.retour import build_retour

        retour = build_retour(heen, number, [], identificatie="G1", today=__import__("datetime").date.today())
        result = await proc.process(retour)
        assert result.status == "acknowledged" and "not a message this adapter sent" not in result.reasons[0]


async def test_proposal_in_the_hub_becomes_a_315(
    live_network: LiveNetwork, hub_client: HubClient, tmp_path: Path
) -> None:
    await _provider_org(live_network)
    proc = processor(live_network, hub_client)
    nummer, bsn = fresh_number(), valid_bsns(1, start=556000000)[0]
    message = wmo301(
        f"PR{nummer}",
        Client(bsn=bsn),
        [Product(nummer, code="01A11", ingang=f"{Y}-01-01", eind=f"{Y + 1}-12-31")],
        ontvanger=PROVIDER_AGB,
    )
    assert (await proc.process(message)).status == "accepted"
    outbound = Outbound(hub_client, proc.state, proc.settings, tmp_path / "out")
    await outbound.poll()
    sr = (await hub_client.search("ServiceRequest", {"toewijzing-nummer": nummer}))[0]
    async with live_network.as_org(PROVIDER_URA) as provider:
        orgs = (await provider.get("Organization", params={"identifier": f"{c.AGB_SYSTEM}|{PROVIDER_AGB}"})).json()
        org_ref = f"Organization/{orgs['entry'][0]['resource']['id']}"
        proposal = {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "proposal",
            "code": {
                "coding": [{"system": c.PRODUCTCATEGORIE_SYSTEM, "code": "02"}],
                "extension": [{"url": c.PRODUCTCODE_EXT, "valueString": "02A01"}],
            },
            "quantityQuantity": {"value": 3, "unit": "Uur", "system": c.EENHEID_SYSTEM, "code": "04"},
            "extension": [{"url": c.FREQUENTIE_EXT, "valueCoding": {"system": c.FREQUENTIE_SYSTEM, "code": "2"}}],
            "subject": sr["subject"],
            "occurrencePeriod": {"start": f"{Y}-05-01", "end": f"{Y + 1}-12-31"},
            "requester": {"reference": org_ref},
            "performer": [{"reference": org_ref}],
            "note": [{"text": "Begeleiding nodig na ziekenhuisopname"}],
        }
        r = await provider.post("ServiceRequest", json=proposal)
        assert r.status_code == 201, r.text
        proposal_id = r.json()["id"]
    written = [w for w in await outbound.poll() if w.mark == f"315:{proposal_id}"]
    assert [w.number for w in written] == ["315"], "the gemeente cannot see the provider's proposal"
    root, msg = _read(written[0].path)
    assert schemas.validate("315", root) == []
    item = msg.node("Client/AangevraagdeProducten/AangevraagdProduct")
    assert item is not None
    assert item.text("ReferentieAanbieder") == proposal_id
    assert (item.text("Product/Categorie"), item.text("Product/Code")) == ("02", "02A01")
    assert item.text("ToewijzingIngangsdatum") == f"{Y}-05-01"
    assert item.text("ToewijzingEinddatum") == f"{Y + 1}-12-31"
    assert (item.text("Omvang/Volume"), item.text("Omvang/Eenheid"), item.text("Omvang/Frequentie")) == ("3", "04", "2")
    assert msg.text("Client/Bsn") == bsn
    assert [w for w in await outbound.poll() if w.mark == f"315:{proposal_id}"] == []
