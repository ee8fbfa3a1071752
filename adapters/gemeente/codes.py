"""iWmo 3.2 code lists (from the Basisschema enumerations) and the hub's systems the adapter writes.

The code lists are package data (``data/iwmo32/enumerations.csv``, copied by scripts/sync/iwmo.py);
they are read on first use.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

HUB = "https://zorgnet-hub.nl/fhir"
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
AGB_SYSTEM = "http://fhir.nl/fhir/NamingSystem/agb-z"
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
GEMEENTE_SYSTEM = f"{HUB}/NamingSystem/cbs-gemeentecode"
TOEWIJZING_SYSTEM = f"{HUB}/NamingSystem/iwmo-toewijzingnummer"
#: A provider's request (315/317): ``{AGB}/{ReferentieAanbieder}`` as the requisition of its products.
VERZOEK_SYSTEM = f"{HUB}/NamingSystem/iwmo-verzoek"
#: One requested product within a request: ``{AGB}/{ReferentieAanbieder}/{n}``.
VERZOEK_PRODUCT_SYSTEM = f"{HUB}/NamingSystem/iwmo-verzoek-product"
NETWERK_SYSTEM = f"{HUB}/NamingSystem/iwmo-netwerk"
RELATIE_SYSTEM = f"{HUB}/NamingSystem/iwmo-relatie"
CATEGORY_SYSTEM = f"{HUB}/CodeSystem/servicerequest-category"
PRODUCTCATEGORIE_SYSTEM = f"{HUB}/CodeSystem/iwmo-productcategorie"
EENHEID_SYSTEM = f"{HUB}/CodeSystem/iwmo-eenheid"
FREQUENTIE_SYSTEM = f"{HUB}/CodeSystem/iwmo-frequentie"
FREQUENTIE_EXT = f"{HUB}/StructureDefinition/ext-WmoFrequentie"
PRODUCTCODE_EXT = f"{HUB}/StructureDefinition/ext-WmoProductCode"
PERFORMER_KIND_EXT = f"{HUB}/StructureDefinition/ext-ActivityPerformerKind"
CARE_ACTIVITY_SYSTEM = f"{HUB}/CodeSystem/care-activity"
CAREPLAN_CATEGORY_SYSTEM = f"{HUB}/CodeSystem/careplan-category"
REDEN_BEEINDIGING_SYSTEM = f"{HUB}/CodeSystem/iwmo-redenbeeindiging"
REDEN_WIJZIGING_SYSTEM = f"{HUB}/CodeSystem/iwmo-redenwijziging"
REDEN_VERZOEK_SYSTEM = f"{HUB}/CodeSystem/iwmo-redenverzoek"
ROLE_SYSTEM = "urn:oid:2.16.840.1.113883.2.4.3.11.22.472"  # nl-core ContactPerson RolCodeLijst
V3_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"

#: Product categories whose support maps onto one of the hub's care activities.
CARE_ACTIVITY = {
    "01": "huishoudelijke-hulp",
    "02": "begeleiding",
    "03": "persoonlijke-verzorging",
    "04": "logeeropvang",
    "07": "dagbesteding",
    "08": "vervoer",
    "12": "vervoer",
}

#: LDT_SoortRelatie codes that are also codes of the nl-core RolCodeLijst (same meaning).
ROLE_CODES = frozenset({"03", "04", "05", "06", "07", "09", "11", "14", "15", "19", "20", "21"})
#: The other LDT_SoortRelatie codes, as HL7 v3 RoleCode family relations.
FAMILY_ROLES = {"10": "PRN", "12": "SPS", "13": "PRN", "16": "CHILD", "17": "FAMMEMB", "18": "FAMMEMB"}
#: LDT_WettelijkeVertegenwoordiging -> the LDT_SoortRelatie of the representative it names.
REPRESENTATIVE_SOORT = {"06": "11", "07": "14", "08": "15", "09": "03"}
#: Role 24: wettelijk vertegenwoordiger (the hub gives legal representatives the client's rights).
LEGAL_REPRESENTATIVE_ROLE = "24"

GENDER = {"0": "unknown", "1": "male", "2": "female"}
GESLACHT = {v: k for k, v in GENDER.items()} | {"other": "0"}
#: LDT_NaamGebruik -> the humanname-assembly-order code (NL1..NL4).
ASSEMBLY_ORDER = {"1": "NL1", "2": "NL2", "3": "NL3", "4": "NL4"}


@cache
def code_lists() -> dict[str, dict[str, str]]:
    """Every Basisschema enumeration: type -> code -> omschrijving."""
    lists: dict[str, dict[str, str]] = {}
    data = resources.files("adapters.gemeente").joinpath("data/iwmo32/enumerations.csv").read_text("utf-8")
    for row in csv.DictReader(data.splitlines()):
        lists.setdefault(row["type"], {})[row["code"]] = row["omschrijving"]
    return lists


def display(code_list: str, code: str | None) -> str | None:
    if code is None:
        return None
    return code_lists().get(code_list, {}).get(code)
