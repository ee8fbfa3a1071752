"""iWmo elements as FHIR resources of the hub's profiles (nl-core Patient/ContactPerson, the Wmo
toewijzing ServiceRequest, the shared care plan, the care team), and back.

Pure functions: no I/O. References are passed in (``Patient/id`` or a transaction's ``urn:uuid:``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any
from zoneinfo import ZoneInfo

from adapters.gemeente import codes as c
from adapters.gemeente.messages import Node

Resource = dict[str, Any]
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
EXT = "http://hl7.org/fhir/StructureDefinition/"
QUALIFIER = f"{EXT}iso21090-EN-qualifier"


def ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


# -- names, dates, contact details ------------------------------------------------------------


def _joined(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def human_name(naam: Node) -> Resource:
    """CDT_VolledigeNaam / CDT_VerkorteNaam as an nl-core HumanName (own and partner name parts)."""
    own, own_prefix = naam.text("Geslachtsnaam/Achternaam"), naam.text("Geslachtsnaam/Voorvoegsel")
    partner, partner_prefix = naam.text("Partnernaam/Achternaam"), naam.text("Partnernaam/Voorvoegsel")
    gebruik = naam.text("NaamGebruik")
    own_full, partner_full = _joined(own_prefix, own), _joined(partner_prefix, partner)
    if partner_full and gebruik == "2":
        family = partner_full
    elif partner_full and gebruik == "3":
        family = f"{partner_full}-{own_full}"
    elif partner_full and gebruik == "4":
        family = f"{own_full}-{partner_full}"
    else:
        family = own_full
    parts = [
        ("humanname-own-prefix", own_prefix),
        ("humanname-own-name", own),
        ("humanname-partner-prefix", partner_prefix),
        ("humanname-partner-name", partner),
    ]
    name: Resource = {"use": "official", "family": family}
    name["_family"] = {"extension": [{"url": f"{EXT}{u}", "valueString": v} for u, v in parts if v]}
    given: list[str] = []
    qualifiers: list[str] = []
    for voornaam in (naam.text("Voornamen") or "").split():
        given.append(voornaam)
        qualifiers.append("BR")
    for letter in (naam.text("Voorletters") or "").replace(".", ""):
        if letter.strip():
            given.append(f"{letter}.")
            qualifiers.append("IN")
    if given:
        name["given"] = given
        name["_given"] = [{"extension": [{"url": QUALIFIER, "valueCode": q}]} for q in qualifiers]
    if gebruik in c.ASSEMBLY_ORDER:
        name["extension"] = [{"url": f"{EXT}humanname-assembly-order", "valueCode": c.ASSEMBLY_ORDER[gebruik]}]
    return name


def short_name(name: Resource) -> dict[str, str | None]:
    """A HumanName as CDT_VerkorteNaam parts: Achternaam, Voorvoegsel, Voornamen, Voorletters."""
    parts = {e["url"].removeprefix(EXT): e.get("valueString") for e in (name.get("_family") or {}).get("extension", [])}
    given = name.get("given") or []
    quals = [
        next((e.get("valueCode") for e in (q or {}).get("extension", []) if e.get("url") == QUALIFIER), None)
        for q in (name.get("_given") or [None] * len(given))
    ]
    voornamen = [g for g, q in zip(given, quals, strict=False) if q != "IN"]
    letters = "".join(g.rstrip(".") for g, q in zip(given, quals, strict=False) if q == "IN")
    if not letters and voornamen:
        letters = "".join(v[0] for v in voornamen)
    return {
        "Achternaam": parts.get("humanname-own-name") or name.get("family"),
        "Voorvoegsel": parts.get("humanname-own-prefix"),
        "Voornamen": " ".join(voornamen) or None,
        "Voorletters": letters or None,
    }


def birth_date(geboortedatum: Node | None) -> str | None:
    """CDT_Geboortedatum with its DatumGebruik precision (1: month, 2: year, 3: unknown)."""
    if geboortedatum is None:
        return None
    datum = geboortedatum.text("Datum")
    if not datum:
        return None
    gebruik = geboortedatum.text("DatumGebruik")
    if gebruik == "1":
        return datum[:7]
    if gebruik == "2":
        return datum[:4]
    if gebruik == "3":
        return None
    return datum


def _address(contact: Node) -> Resource | None:
    adres = contact.node("Adres")
    if adres is None:
        return None
    soort = contact.text("Soort")
    house = _joined(
        adres.text("Huis/Huisnummer"), adres.text("Huis/Huisletter"), adres.text("Huis/HuisnummerToevoeging")
    )
    out: Resource = {
        "use": "temp" if soort in ("03", "04") else "home",
        "line": [_joined(adres.text("Straatnaam"), house)],
        "postalCode": adres.text("Postcode"),
        "city": adres.text("Plaatsnaam"),
        "country": adres.text("LandCode"),
    }
    if soort == "02":
        out["type"] = "postal"
    return {k: v for k, v in out.items() if v}


def _telecom(contact: Node) -> list[Resource]:
    out: list[Resource] = []
    for tag in ("Telefoon/Telefoon01", "Telefoon/Telefoon02"):
        nummer = contact.text(f"{tag}/Telefoonnummer")
        if nummer:
            out.append({"system": "phone", "value": nummer})
    email = contact.text("Emailadres")
    if email:
        out.append({"system": "email", "value": email})
    return out


def _contact_details(target: Resource, contacts: list[Node]) -> None:
    addresses = [a for a in (_address(x) for x in contacts) if a]
    telecom = [t for x in contacts for t in _telecom(x)]
    if addresses:
        target["address"] = addresses
    if telecom:
        target["telecom"] = telecom


# -- resources from a WMO301 ----------------------------------------------------------------


def patient(client: Node) -> Resource:
    bsn = client.text("Bsn") or ""
    res: Resource = {
        "resourceType": "Patient",
        "identifier": [{"system": c.BSN_SYSTEM, "value": bsn}],
        "active": True,
        "name": [human_name(client.node("Naam") or client)],
        "gender": c.GENDER.get(client.text("Geslacht") or "0", "unknown"),
    }
    born = birth_date(client.node("Geboortedatum"))
    if born:
        res["birthDate"] = born
    taal = client.text("Communicatie/Taal")
    if taal:
        res["communication"] = [{"language": {"text": taal}}]
    if client.text("Communicatie/Vorm"):
        res["extension"] = [{"url": f"{EXT}patient-interpreterRequired", "valueBoolean": True}]
    _contact_details(res, client.all("Contactgegevens/Contact"))
    return res


def related_person(relatie: Node, bsn: str, patient_ref: str, vertegenwoordiging: str | None) -> Resource:
    soort = relatie.text("Soort") or "09"
    codings = []
    if soort in c.ROLE_CODES:
        codings.append({"system": c.ROLE_SYSTEM, "code": soort, "display": c.display("LDT_SoortRelatie", soort)})
    elif soort in c.FAMILY_ROLES:
        codings.append({"system": c.V3_ROLE_SYSTEM, "code": c.FAMILY_ROLES[soort]})
    relationship = [{"coding": codings, "text": c.display("LDT_SoortRelatie", soort)}]
    if vertegenwoordiging and c.REPRESENTATIVE_SOORT.get(vertegenwoordiging) == soort:
        relationship.append(
            {
                "coding": [
                    {
                        "system": c.ROLE_SYSTEM,
                        "code": c.LEGAL_REPRESENTATIVE_ROLE,
                        "display": "Wettelijke vertegenwoordiger",
                    }
                ]
            }
        )
    res: Resource = {
        "resourceType": "RelatedPerson",
        "identifier": [{"system": c.RELATIE_SYSTEM, "value": f"{bsn}-{relatie.text('Nummer')}"}],
        "active": True,
        "patient": ref(patient_ref),
        "relationship": relationship,
        "name": [human_name(relatie.node("Naam") or relatie)],
    }
    if relatie.text("Geslacht"):
        res["gender"] = c.GENDER.get(relatie.text("Geslacht") or "0", "unknown")
    born = birth_date(relatie.node("Geboortedatum"))
    if born:
        res["birthDate"] = born
    _contact_details(res, relatie.all("Contact"))
    return res


def gemeente_organization(ura: str, gemeente_code: str, name: str) -> Resource:
    return {
        "resourceType": "Organization",
        "identifier": [{"system": c.URA_SYSTEM, "value": ura}, {"system": c.GEMEENTE_SYSTEM, "value": gemeente_code}],
        "active": True,
        "name": name,
    }


def provider_organization(agb: str) -> Resource:
    return {
        "resourceType": "Organization",
        "identifier": [{"system": c.AGB_SYSTEM, "value": agb}],
        "active": True,
        "name": f"Wmo-aanbieder AGB {agb}",
    }


def authored_on(datum: dt.date, tijd: str | None) -> str:
    """Toewijzingsdatum + Toewijzingstijd (Dutch local time) as a FHIR dateTime with offset."""
    moment = dt.datetime.combine(datum, dt.time.fromisoformat(tijd or "00:00:00"), tzinfo=AMSTERDAM)
    return moment.isoformat()


def parse_instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=AMSTERDAM)


def product_code(categorie: str, code: str | None) -> Resource:
    concept: Resource = {
        "coding": [
            {
                "system": c.PRODUCTCATEGORIE_SYSTEM,
                "code": categorie,
                "display": c.display("LDT_ProductCategorie", categorie),
            }
        ]
    }
    if code:
        concept["extension"] = [{"url": c.PRODUCTCODE_EXT, "valueString": code}]
    return concept


def omvang(node: Node | None) -> tuple[Resource | None, Resource | None]:
    """CDT_Omvang as (quantityQuantity, frequentie extension)."""
    if node is None or node.text("Volume") is None:
        return None, None
    eenheid = node.text("Eenheid") or ""
    quantity = {
        "value": node.int("Volume"),
        "unit": c.display("LDT_Eenheid", eenheid),
        "system": c.EENHEID_SYSTEM,
        "code": eenheid,
    }
    frequentie = node.text("Frequentie") or ""
    ext = {
        "url": c.FREQUENTIE_EXT,
        "valueCoding": {
            "system": c.FREQUENTIE_SYSTEM,
            "code": frequentie,
            "display": c.display("LDT_Frequentie", frequentie),
        },
    }
    return quantity, ext


def toewijzing(
    product: Node, patient_ref: str, gemeente_ref: str, provider_ref: str, provider_agb: str, careplan_ref: str
) -> Resource:
    """A ToegewezenProduct as the hub's Wmo toewijzing ServiceRequest."""
    nummer = product.text("ToewijzingNummer") or ""
    reden = product.text("RedenWijziging")
    status = {"13": "revoked", "01": "entered-in-error"}.get(reden or "", "active")
    period: Resource = {"start": product.text("Ingangsdatum")}
    if product.text("Einddatum"):
        period["end"] = product.text("Einddatum")
    res: Resource = {"resourceType": "ServiceRequest"}
    quantity, frequentie = omvang(product.node("Omvang"))
    if frequentie:
        res["extension"] = [frequentie]
    res["identifier"] = [{"system": c.TOEWIJZING_SYSTEM, "value": nummer}]
    res |= {
        "status": status,
        "intent": "order",
        "category": [{"coding": [{"system": c.CATEGORY_SYSTEM, "code": "wmo-toewijzing"}]}],
        "code": product_code(product.text("Product/Categorie") or "", product.text("Product/Code"))
        if product.node("Product") is not None
        else {"text": "Wmo-ondersteuning (budget)"},
    }
    if quantity:
        res["quantityQuantity"] = quantity
    res |= {
        "subject": ref(patient_ref),
        "occurrencePeriod": period,
        "authoredOn": authored_on(product.date("Toewijzingsdatum") or dt.date.min, product.text("Toewijzingstijd")),
        "requester": ref(gemeente_ref),
        "performer": [ref(provider_ref)],
        "basedOn": [ref(careplan_ref)],
    }
    if product.text("ReferentieAanbieder"):
        referentie = product.text("ReferentieAanbieder")
        res["requisition"] = {"system": c.VERZOEK_SYSTEM, "value": f"{provider_agb}/{referentie}"}
    if reden:
        res["reasonCode"] = [
            {
                "coding": [
                    {
                        "system": c.REDEN_WIJZIGING_SYSTEM,
                        "code": reden,
                        "display": c.display("LDT_RedenWijziging", reden),
                    }
                ]
            }
        ]
    notes = []
    if product.text("Commentaar"):
        notes.append({"text": product.text("Commentaar")})
    if product.text("Budget"):
        notes.append({"text": f"Budget: {product.text('Budget')} (LDT_Budget)"})
    if notes:
        res["note"] = notes
    return res


def care_activity(categorie: str | None, code: str | None) -> Resource:
    label = c.display("LDT_ProductCategorie", categorie) if categorie else "Wmo-ondersteuning"
    if categorie in c.CARE_ACTIVITY:
        return {"coding": [{"system": c.CARE_ACTIVITY_SYSTEM, "code": c.CARE_ACTIVITY[categorie]}], "text": label}
    return {"text": label}


def careplan(
    sr: Resource, patient_ref: str, gemeente_ref: str, careteam_ref: str, previous: Resource | None
) -> Resource:
    """The care plan of one toewijzing: one activity "who does what", the provider's organisation.

    The activity's status, dates and status reason are the provider's to record (start/stop of
    care); an update from the gemeente keeps them."""
    nummer = sr["identifier"][0]["value"]
    categorie = next(iter(sr["code"].get("coding") or [{}])).get("code")
    code = next((e["valueString"] for e in sr["code"].get("extension") or []), None)
    period = sr["occurrencePeriod"]
    detail: Resource = {
        "extension": [{"url": c.PERFORMER_KIND_EXT, "valueCode": "organisatie"}],
        "code": care_activity(categorie, code),
        "status": "not-started",
        "description": _activity_text(sr),
        "performer": sr["performer"],
    }
    if previous is not None:
        old = previous["activity"][0]["detail"]
        for key in ("status", "statusReason", "scheduledPeriod"):
            if key in old:
                detail[key] = old[key]
    if sr["status"] in ("revoked", "entered-in-error") and detail["status"] in ("not-started", "scheduled"):
        detail["status"] = "cancelled"
    return {
        "resourceType": "CarePlan",
        "identifier": [{"system": c.TOEWIJZING_SYSTEM, "value": nummer}],
        "status": "revoked" if sr["status"] in ("revoked", "entered-in-error") else "active",
        "intent": "plan",
        "category": [{"coding": [{"system": c.CAREPLAN_CATEGORY_SYSTEM, "code": "gedeeld-zorgplan"}]}],
        "title": f"Wmo-toewijzing {nummer}: {detail['code']['text']}",
        "subject": ref(patient_ref),
        "period": period,
        "author": ref(gemeente_ref),
        "careTeam": [ref(careteam_ref)],
        "activity": [{"detail": detail}],
    }


def _activity_text(sr: Resource) -> str:
    parts = [sr["code"].get("text") or sr["code"]["coding"][0].get("display") or "Wmo-ondersteuning"]
    code = next((e["valueString"] for e in sr["code"].get("extension") or []), None)
    if code:
        parts.append(f"product {code}")
    q = sr.get("quantityQuantity")
    if q:
        freq = next(
            (e["valueCoding"].get("display") for e in sr.get("extension") or [] if e["url"] == c.FREQUENTIE_EXT), ""
        )
        parts.append(f"{q['value']} x {q.get('unit')} {str(freq).lower()}".strip())
    return ", ".join(parts)


def network_key(gemeente_code: str, bsn: str) -> str:
    """The identifier value of a client's Wmo network in one gemeente (pseudonymous: no BSN in it)."""
    return f"{gemeente_code}-{hashlib.sha256(bsn.encode()).hexdigest()[:20]}"


def careteam(
    patient_ref: str,
    gemeente_ref: str,
    providers: list[tuple[str, Resource]],
    previous: Resource | None,
    key: str,
) -> Resource:
    """The client's Wmo network: the client, the gemeente, every provider with its toewijzing period.
    Participants already there (also ones others added) are kept; a provider's period widens."""
    participants: list[Resource] = list((previous or {}).get("participant") or [])
    by_member = {(p.get("member") or {}).get("reference"): p for p in participants}

    def add(member: str, role: str, period: Resource | None) -> None:
        existing = by_member.get(member)
        if existing is None:
            entry: Resource = {"member": ref(member), "role": [{"text": role}]}
            if period:
                entry["period"] = dict(period)
            participants.append(entry)
            by_member[member] = entry
        elif period:
            old = existing.get("period") or {}
            start = min(x for x in (old.get("start"), period.get("start")) if x) if old else period.get("start")
            ends = [old.get("end"), period.get("end")] if old else [period.get("end")]
            merged: Resource = {"start": start}
            if all(ends):
                merged["end"] = max(e for e in ends if e)
            existing["period"] = merged

    add(patient_ref, "Cliënt", None)
    add(gemeente_ref, "Gemeente (Wmo-consulent)", None)
    for provider_ref, period in providers:
        add(provider_ref, "Wmo-aanbieder", period)
    return {
        "resourceType": "CareTeam",
        "identifier": [{"system": c.NETWERK_SYSTEM, "value": key}],
        "status": "active",
        "name": "Wmo-netwerk",
        "subject": ref(patient_ref),
        "participant": participants,
        "managingOrganization": [ref(gemeente_ref)],
    }
