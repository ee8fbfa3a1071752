"""Small iWmo 3.2 messages for tests, written out as XML text (the shape of the official examples)."""

from __future__ import annotations

from dataclasses import dataclass, field

NS = 'xmlns:iwmo="http://www.istandaarden.nl/iwmo/3_2/basisschema/schema"'


@dataclass
class Product:
    nummer: str
    categorie: str | None = "01"
    code: str | None = "01A01"
    ingang: str = "2025-01-01"
    eind: str | None = "2025-12-31"
    datum: str = "2024-12-15"
    tijd: str = "10:00:00"
    omvang: tuple[int, str, str] | None = (4, "04", "2")
    reden: str | None = None
    budget: int | None = None
    referentie: str | None = None


@dataclass
class Client:
    bsn: str = "999900006"
    achternaam: str = "Wit"
    voorvoegsel: str | None = "de"
    voornamen: str = "Tim"
    geboren: str = "1967-08-13"
    geslacht: str = "1"
    relaties: list[tuple[str, str, str]] = field(default_factory=list)  # (nummer, soort, achternaam)


def header(number: str, code: str, ident: str, afzender: str, ontvanger: str, dagtekening: str) -> str:
    p = f"wmo{number}"
    return (
        f"<{p}:Header><{p}:BerichtCode>{code}</{p}:BerichtCode><{p}:BerichtVersie>3</{p}:BerichtVersie>"
        f"<{p}:BerichtSubversie>2</{p}:BerichtSubversie><{p}:Afzender>{afzender}</{p}:Afzender>"
        f"<{p}:Ontvanger>{ontvanger}</{p}:Ontvanger><{p}:BerichtIdentificatie>"
        f"<iwmo:Identificatie>{ident}</iwmo:Identificatie><iwmo:Dagtekening>{dagtekening}</iwmo:Dagtekening>"
        f"</{p}:BerichtIdentificatie><{p}:XsdVersie><iwmo:BasisschemaXsdVersie>1.0.0</iwmo:BasisschemaXsdVersie>"
        f"<iwmo:BerichtXsdVersie>1.0.0</iwmo:BerichtXsdVersie></{p}:XsdVersie></{p}:Header>"
    )


def _opt(tag: str, value: object) -> str:
    return "" if value is None else f"<wmo301:{tag}>{value}</wmo301:{tag}>"


def wmo301(
    ident: str,
    client: Client,
    products: list[Product],
    *,
    ontvanger: str = "65656055",
    afzender: str = "0384",
    dagtekening: str = "2024-12-15",
) -> bytes:
    items = []
    for p in products:
        product = ""
        if p.categorie is not None:
            code = f"<iwmo:Code>{p.code}</iwmo:Code>" if p.code else ""
            product = f"<wmo301:Product><iwmo:Categorie>{p.categorie}</iwmo:Categorie>{code}</wmo301:Product>"
        omvang = ""
        if p.omvang is not None:
            omvang = (
                f"<wmo301:Omvang><iwmo:Volume>{p.omvang[0]}</iwmo:Volume><iwmo:Eenheid>{p.omvang[1]}</iwmo:Eenheid>"
                f"<iwmo:Frequentie>{p.omvang[2]}</iwmo:Frequentie></wmo301:Omvang>"
            )
        items.append(
            f"<wmo301:ToegewezenProduct><wmo301:ToewijzingNummer>{p.nummer}</wmo301:ToewijzingNummer>"
            f"{_opt('ReferentieAanbieder', p.referentie)}{product}"
            f"<wmo301:Toewijzingsdatum>{p.datum}</wmo301:Toewijzingsdatum>"
            f"<wmo301:Toewijzingstijd>{p.tijd}</wmo301:Toewijzingstijd>"
            f"<wmo301:Ingangsdatum>{p.ingang}</wmo301:Ingangsdatum>{_opt('Einddatum', p.eind)}"
            f"{_opt('RedenWijziging', p.reden)}{omvang}{_opt('Budget', p.budget)}</wmo301:ToegewezenProduct>"
        )
    voorvoegsel = f"<iwmo:Voorvoegsel>{client.voorvoegsel}</iwmo:Voorvoegsel>" if client.voorvoegsel else ""
    relaties = ""
    if client.relaties:
        relaties = (
            "<wmo301:Relaties>"
            + "".join(
                f"<wmo301:Relatie><wmo301:Nummer>{n}</wmo301:Nummer><wmo301:Soort>{soort}</wmo301:Soort>"
                f"<wmo301:Naam><iwmo:Geslachtsnaam><iwmo:Achternaam>{naam}</iwmo:Achternaam></iwmo:Geslachtsnaam>"
                f"<iwmo:NaamGebruik>1</iwmo:NaamGebruik></wmo301:Naam><wmo301:Contact><wmo301:Soort>01</wmo301:Soort>"
                f"<wmo301:Emailadres>r{n}@example.nl</wmo301:Emailadres></wmo301:Contact></wmo301:Relatie>"
                for n, soort, naam in client.relaties
            )
            + "</wmo301:Relaties>"
        )
    body = (
        f"<wmo301:Client><wmo301:Bsn>{client.bsn}</wmo301:Bsn><wmo301:Geboortedatum><iwmo:Datum>{client.geboren}"
        f"</iwmo:Datum></wmo301:Geboortedatum><wmo301:Geslacht>{client.geslacht}</wmo301:Geslacht><wmo301:Naam>"
        f"<iwmo:Geslachtsnaam><iwmo:Achternaam>{client.achternaam}</iwmo:Achternaam>{voorvoegsel}</iwmo:Geslachtsnaam>"
        f"<iwmo:Voornamen>{client.voornamen}</iwmo:Voornamen><iwmo:NaamGebruik>1</iwmo:NaamGebruik></wmo301:Naam>"
        f"{relaties}<wmo301:Contactgegevens><wmo301:Contact><wmo301:Soort>01</wmo301:Soort><wmo301:Adres><iwmo:Huis>"
        f"<iwmo:Huisnummer>1</iwmo:Huisnummer></iwmo:Huis><iwmo:Postcode>1234AB</iwmo:Postcode>"
        f"<iwmo:Straatnaam>Dorpsstraat</iwmo:Straatnaam><iwmo:Plaatsnaam>Rivierstad</iwmo:Plaatsnaam></wmo301:Adres>"
        f"</wmo301:Contact></wmo301:Contactgegevens>"
        f"<wmo301:ToegewezenProducten>{''.join(items)}</wmo301:ToegewezenProducten></wmo301:Client>"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<wmo301:Bericht {NS} '
        f'xmlns:wmo301="http://www.istandaarden.nl/iwmo/3_2/wmo301/schema">'
        f"{header('301', '414', ident, afzender, ontvanger, dagtekening)}{body}</wmo301:Bericht>"
    ).encode()


def valid_bsns(count: int, start: int = 100000000) -> list[str]:
    """``count`` distinct nine-digit numbers that pass the elfproef."""
    out: list[str] = []
    n = start
    while len(out) < count:
        s = f"{n:09d}"
        if (sum(int(d) * w for d, w in zip(s[:8], range(9, 1, -1), strict=True)) - int(s[8])) % 11 == 0:
            out.append(s)
        n += 1
    return out
