"""The gemeente adapter's parts that need no hub: schemas, retours, rules, name mapping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from lxml import etree

from adapters.gemeente import fhir, schemas
from adapters.gemeente.messages import RETOUR_OF, Node, message_number
from adapters.gemeente.retour import Finding, build_retour
from adapters.gemeente.rules import elfproef
from tests.adapters.conftest import DATA
from tests.adapters.helpers import retour_codes_at

NUMBERS = ["301", "302", "305", "306", "307", "308", "315", "316", "317", "318", "319", "320", "323"]


@pytest.mark.parametrize("number", NUMBERS)
def test_every_example_validates_against_its_packaged_schema(number: str) -> None:
    root = etree.parse(str(DATA / f"WMO{number}.xml")).getroot()
    assert message_number(root) == number
    assert schemas.validate(number, root) == []


def test_schema_refuses_an_invalid_message() -> None:
    root = etree.fromstring((DATA / "WMO301.xml").read_bytes().replace(b">999900006<", b">9999<"))
    assert schemas.validate("301", root)


@pytest.mark.parametrize("number", sorted(RETOUR_OF))
def test_retour_of_every_heen_example_is_xsd_valid(number: str) -> None:
    root = etree.parse(str(DATA / f"WMO{number}.xml")).getroot()
    for technical in (False, True):
        retour = build_retour(
            root, number, [], identificatie="R00000000001", today=dt.date(2026, 1, 2), technical=technical
        )
        assert schemas.validate(RETOUR_OF[number], etree.fromstring(retour)) == []
        codes = retour_codes_at(retour)
        assert codes["Header"] == (["0001"] if technical else ["0200"])
        assert (len(codes) == 1) == technical


def test_retour_marks_the_failing_class_and_the_rest_not_assessed() -> None:
    root = etree.parse(str(DATA / "WMO301.xml")).getroot()
    product = next(e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == "ToegewezenProduct")
    retour = build_retour(
        root, "301", [Finding("S329", "unknown product", product)], identificatie="R1", today=dt.date(2026, 1, 2)
    )
    assert schemas.validate("302", etree.fromstring(retour)) == []
    codes = retour_codes_at(retour)
    assert codes["ToegewezenProduct"] == ["S329"] and codes["Client"] == ["0233"] and codes["Header"] == ["0200"]


@pytest.mark.parametrize(
    ("bsn", "ok"),
    [
        ("999900006", True),
        ("999993653", True),
        ("123456782", True),
        ("123456789", False),
        ("000000000", False),
        ("12345678", False),
        ("99990000A", False),
        (None, False),
    ],
)
def test_elfproef(bsn: str | None, ok: bool) -> None:
    assert elfproef(bsn) is ok


def test_names_round_trip_to_the_short_form() -> None:
    root = Node(etree.parse(str(DATA / "WMO301.xml")).getroot())
    name = fhir.human_name(root.node("Client/Naam"))  # type: ignore[arg-type]
    assert name["family"] == "de Wit-van Jansen"
    assert fhir.short_name(name) == {"Achternaam": "Wit", "Voorvoegsel": "de", "Voornamen": "Tim", "Voorletters": "T"}


def test_authored_on_is_dutch_local_time() -> None:
    assert fhir.authored_on(dt.date(2023, 8, 13), "12:34:56") == "2023-08-13T12:34:56+02:00"
    assert fhir.authored_on(dt.date(2023, 1, 13), "12:34:56") == "2023-01-13T12:34:56+01:00"


async def test_a_hub_refusal_is_answered_not_retried_forever(tmp_path: Path) -> None:
    """A 4xx from the hub (what the message maps to is refused) gives a retour with 0001 and the reason;
    a hub that cannot be reached raises, so the transport keeps the message for later."""
    from adapters.common.client import HubClient, RetryPolicy
    from adapters.common.errors import HubUnavailable
    from adapters.gemeente.config import GemeenteSettings
    from adapters.gemeente.processor import Processor
    from adapters.gemeente.state import State

    status = {"code": 422}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status["code"],
            json={"resourceType": "OperationOutcome", "issue": [{"diagnostics": "Patient.name: not allowed"}]},
        )

    settings = GemeenteSettings(hub_base="http://hub.test/fhir", state=tmp_path / "state.sqlite")
    hub = HubClient(
        settings.hub_base,
        None,
        http=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        retry=RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.001),
    )
    processor = Processor(hub, State(settings.state), settings)
    result = await processor.process((DATA / "WMO301.xml").read_bytes())
    assert result.status == "rejected" and "not allowed" in result.reasons[0]
    assert retour_codes_at(result.retour or b"")["Header"] == ["0001"]
    status["code"] = 503
    with pytest.raises(HubUnavailable):
        await processor.process((DATA / "WMO301.xml").read_bytes().replace(b">101<", b">102<"))
