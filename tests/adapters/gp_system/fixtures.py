# ruff: noqa: E501  (fixture data: codings stay on one line)
"""A GP practice's data in the shape of the MedMij GP data 2.0 set (huisartsgegevens), written for the repo.

For each client: the Patient (BSN), ICPC episodes (EpisodeOfCare) with their problems (Condition),
alerts (Flag), allergies (AllergyIntolerance), a prescription with its product (MedicationRequest +
Medication), measurements (blood pressure, weight, eGFR; Observation), SOEP journal lines of a
contact (Observation with a journaalregeltype; some tagged for sharing with the care network, some
not), and for some an advance directive (Consent). Deterministic per seed.

``version="stu3"`` gives zib2017/STU3 shapes (what most Dutch GP systems serve today), ``"r4"`` the
zib2020/R4 shapes of the same facts.
"""

from __future__ import annotations

import functools
import random
from datetime import date, timedelta
from typing import Any

ICPC = "http://hl7.org/fhir/sid/icpc-1-nl"
NHG45 = "https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
JOURNAAL = "http://fhir.nl/fhir/NamingSystem/journaalregeltypen"
GPK = "urn:oid:2.16.840.1.113883.2.4.4.1"  # G-Standaard GPK
HPK = "urn:oid:2.16.840.1.113883.2.4.4.7"  # G-Standaard HPK
SHARE_TAG = {"system": "https://zorgnet-hub.nl/fhir/CodeSystem/delen", "code": "zorgnetwerk"}
IDS = "urn:oid:2.16.840.1.113883.2.4.3.11.999.7.6"

EPISODES = [
    ("K78", "Boezemfibrilleren/-fladderen"),
    ("T90", "Diabetes mellitus type 2"),
    ("K86", "Hypertensie"),
    ("P70", "Dementie"),
    ("R96", "Astma"),
    ("L89", "Artrose heup"),
    ("K77", "Decompensatio cordis"),
]
DRUGS = [
    ("70785", "METOPROLOL TABLET 50MG"),
    ("12345", "METFORMINE TABLET 500MG"),
    ("54321", "PARACETAMOL TABLET 500MG"),
    ("23456", "SALBUTAMOL INHALATOR 100UG"),
]
ALLERGENS = [("1112821", "PREDNISOLON CAPSULE"), ("91936005", "PENICILLINE")]


@functools.cache
def _valid_bsns(count: int) -> tuple[str, ...]:
    out: list[str] = []
    prefix = 99_980_000
    while len(out) < count:
        digits = [int(c) for c in str(prefix)]
        check = sum(d * (9 - k) for k, d in enumerate(digits)) % 11
        if check < 10:
            out.append(f"{prefix}{check}")
        prefix += 1
    return tuple(out)


def bsn_for(index: int) -> str:
    """A valid (elfproef) test BSN per client index, in the 99998xxxx range used for testing."""
    return _valid_bsns(max(index + 1, 256))[index]


def _iso(day: date) -> str:
    return day.isoformat()


class Practice:
    """One GP practice's records, as the fake GP system serves them."""

    def __init__(self, clients: int, *, version: str = "stu3", seed: int = 7, today: date | None = None) -> None:
        self.version = version
        self.today = today or date.today()
        self.rng = random.Random(seed)
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self._add(self._organization())
        self._add(self._practitioner())
        for i in range(clients):
            self._client(i)

    # -- building ---------------------------------------------------------------------------------

    def _add(self, resource: dict[str, Any]) -> None:
        self.resources.setdefault(resource["resourceType"], {})[resource["id"]] = resource

    def _ago(self, days: int) -> str:
        return _iso(self.today - timedelta(days=days))

    def _organization(self) -> dict[str, Any]:
        return {
            "resourceType": "Organization",
            "id": "praktijk",
            "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "00012345"}],
            "name": "Huisartsenpraktijk De Linde",
        }

    def _practitioner(self) -> dict[str, Any]:
        return {
            "resourceType": "Practitioner",
            "id": "ha1",
            "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers", "value": "900001111"}],
            "name": [{"family": "de Vries", "given": ["Anna"]}],
        }

    def _client(self, i: int) -> None:
        rng, stu3 = self.rng, self.version == "stu3"
        pid = f"p{i:04d}"
        patient = {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": BSN, "value": bsn_for(i)}],
            "name": [{"family": f"Client{i}", "given": ["Test"]}],
            "gender": "female",
            "birthDate": f"19{30 + i % 30:02d}-0{1 + i % 9}-1{i % 9}",
            "generalPractitioner": [{"reference": "Organization/praktijk"}],
        }
        self._add(patient)
        subject = {"reference": f"Patient/{pid}"}
        author = {"reference": "Practitioner/ha1", "display": "A. de Vries"}
        code, text = EPISODES[i % len(EPISODES)]
        active = i % 5 != 4
        cond = {
            "resourceType": "Condition",
            "id": f"{pid}-cond",
            "identifier": [{"system": IDS, "value": f"{pid}-c1"}],
            "category": [{"coding": [{"system": SNOMED, "code": "282291009", "display": "Diagnosis"}]}],
            "code": {"coding": [{"system": ICPC, "code": code, "display": text}]},
            "subject": subject,
            "onsetDateTime": self._ago(400 + i),
        }
        if stu3:
            cond |= {
                "clinicalStatus": "active" if active else "inactive",
                "verificationStatus": "confirmed",
                "assertedDate": self._ago(400 + i),
                "asserter": author,
            }
        else:
            cond |= {
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active" if active else "inactive",
                        }
                    ]
                },
                "verificationStatus": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}
                    ]
                },
                "recordedDate": self._ago(400 + i),
                "asserter": author,
            }
        self._add(cond)
        self._add(
            {
                "resourceType": "EpisodeOfCare",
                "id": f"{pid}-ep",
                "identifier": [{"system": IDS, "value": f"{pid}-e1"}],
                "status": "active" if active else "finished",
                "type": [{"coding": [{"system": SNOMED, "code": "64572001", "display": "aandoening"}]}],
                "diagnosis": [{"condition": {"reference": f"Condition/{pid}-cond"}}],
                "patient": subject,
                "period": {"start": self._ago(400 + i)} | ({} if active else {"end": self._ago(30)}),
                "extension": [
                    {"url": "http://nictiz.nl/fhir/StructureDefinition/EpisodeOfCare-Title", "valueString": text}
                ],
            }
        )
        if i % 3 == 0:
            self._add(
                {
                    "resourceType": "Flag",
                    "id": f"{pid}-alert",
                    "identifier": [{"system": IDS, "value": f"{pid}-a1"}],
                    "status": "active",
                    # STU3 Flag.category is one CodeableConcept, R4's a list
                    "category": (lambda c: c if stu3 else [c])(
                        {"coding": [{"system": LOINC, "code": "74018-3", "display": "alert"}]}
                    ),
                    "code": {"coding": [{"system": ICPC, "code": code, "display": text}]},
                    "subject": subject,
                    "period": {"start": self._ago(90)},
                    "author": author,
                }
            )
        if i % 4 == 0:
            allergen = ALLERGENS[i % len(ALLERGENS)]
            allergy = {
                "resourceType": "AllergyIntolerance",
                "id": f"{pid}-allergy",
                "identifier": [{"system": IDS, "value": f"{pid}-al1"}],
                "category": ["medication"],
                "criticality": "high",
                "code": {
                    "coding": [
                        {
                            "system": SNOMED if allergen[0].startswith("9") else HPK,
                            "code": allergen[0],
                            "display": allergen[1],
                        }
                    ]
                },
                "patient": subject,
                "onsetDateTime": self._ago(800),
            }
            if stu3:
                allergy |= {
                    "clinicalStatus": "active",
                    "verificationStatus": "confirmed",
                    "assertedDate": self._ago(800),
                    "recorder": author,
                }
            else:
                allergy |= {
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "verificationStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                                "code": "confirmed",
                            }
                        ]
                    },
                    "recordedDate": self._ago(800),
                    "recorder": author,
                }
            self._add(allergy)
        drug = DRUGS[i % len(DRUGS)]
        self._add(
            {
                "resourceType": "Medication",
                "id": f"{pid}-med",
                "code": {"coding": [{"system": GPK, "code": drug[0], "display": drug[1]}], "text": drug[1]},
            }
        )
        request = {
            "resourceType": "MedicationRequest",
            "id": f"{pid}-mr",
            "identifier": [{"system": IDS, "value": f"{pid}-mr1"}],
            "status": "active",
            "intent": "order",
            "medicationReference": {"reference": f"Medication/{pid}-med", "display": drug[1]},
            "subject": subject,
            "authoredOn": self._ago(60),
            "dosageInstruction": [
                {
                    "sequence": 1,
                    "text": "2 maal daags 1 tablet",
                    "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                }
            ],
        }
        prescription = {"coding": [{"system": SNOMED, "code": "16076005", "display": "Prescription (procedure)"}]}
        if stu3:
            request |= {"category": prescription, "requester": {"agent": author}}
        else:
            request |= {"category": [prescription], "requester": author}
        self._add(request)
        systolic, diastolic = rng.randint(120, 175), rng.randint(70, 100)
        day = self._ago(20 + i % 40)
        vital = {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/observation-category"
                    if stu3
                    else "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
        self._add(
            {
                "resourceType": "Observation",
                "id": f"{pid}-bp",
                "identifier": [{"system": IDS, "value": f"{pid}-bp1"}],
                "status": "final",
                "category": [vital],
                "code": {
                    "coding": [
                        {"system": NHG45, "code": "1743", "display": "bloeddruk"},
                        {"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"},
                    ]
                },
                "subject": subject,
                "effectiveDateTime": day,
                "component": [
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                        "valueQuantity": {"value": systolic, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
                    },
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                        "valueQuantity": {"value": diastolic, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
                    },
                ],
            }
        )
        self._add(
            {
                "resourceType": "Observation",
                "id": f"{pid}-weight",
                "identifier": [{"system": IDS, "value": f"{pid}-w1"}],
                "status": "final",
                "category": [vital],
                "code": {
                    "coding": [
                        {"system": NHG45, "code": "357", "display": "lichaamsgewicht"},
                        {"system": LOINC, "code": "29463-7", "display": "Body weight"},
                    ]
                },
                "subject": subject,
                "effectiveDateTime": day,
                "valueQuantity": {"value": round(rng.uniform(50, 95), 1), "unit": "kg", "system": UCUM, "code": "kg"},
            }
        )
        if i % 2 == 0:
            self._add(
                {
                    "resourceType": "Observation",
                    "id": f"{pid}-egfr",
                    "identifier": [{"system": IDS, "value": f"{pid}-gfr1"}],
                    "status": "final",
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://hl7.org/fhir/observation-category"
                                    if stu3
                                    else "http://terminology.hl7.org/CodeSystem/observation-category",
                                    "code": "laboratory",
                                }
                            ]
                        }
                    ],
                    "code": {
                        "coding": [
                            {"system": NHG45, "code": "3583", "display": "eGFR volgens CKD-EPI"},
                            {"system": LOINC, "code": "62238-1", "display": "eGFR CKD-EPI"},
                        ]
                    },
                    "subject": subject,
                    "effectiveDateTime": self._ago(45),
                    "valueQuantity": {
                        "value": rng.randint(35, 90),
                        "unit": "ml/min/1.73m2",
                        "system": UCUM,
                        "code": "mL/min/{1.73_m2}",
                    },
                }
            )
        # an old measurement: the summary takes measurements of the last 14 months only
        self._add(
            {
                "resourceType": "Observation",
                "id": f"{pid}-weight-old",
                "identifier": [{"system": IDS, "value": f"{pid}-w0"}],
                "status": "final",
                "category": [vital],
                "code": {"coding": [{"system": NHG45, "code": "357", "display": "lichaamsgewicht"}]},
                "subject": subject,
                "effectiveDateTime": self._ago(900),
                "valueQuantity": {"value": 80.0, "unit": "kg", "system": UCUM, "code": "kg"},
            }
        )
        for kind, text, shared in (
            ("S", "Valt de laatste tijd vaker, slaapt slecht.", True),
            ("O", "Lichte enkeloedeem beiderzijds.", False),
            ("E", "Verhoogd valrisico bij orthostatische hypotensie.", True),
            ("P", "Thuiszorg inschakelen, medicatie herzien over 2 weken.", True),
        ):
            line = {
                "resourceType": "Observation",
                "id": f"{pid}-soep-{kind.lower()}",
                "identifier": [{"system": IDS, "value": f"{pid}-j{kind}"}],
                "status": "final",
                "code": {"coding": [{"system": JOURNAAL, "code": kind}]},
                "subject": subject,
                "effectiveDateTime": self._ago(10),
                "valueString": text,
                "performer": [author],
            }
            if shared:
                line["meta"] = {"tag": [dict(SHARE_TAG)]}
            self._add(line)
        if i % 6 == 0:
            self._add(self._directive(pid, subject, stu3))

    def _directive(self, pid: str, subject: dict[str, Any], stu3: bool) -> dict[str, Any]:
        """A treatment directive (zib BehandelAanwijzing): no resuscitation."""
        base = {
            "resourceType": "Consent",
            "id": f"{pid}-nr",
            "identifier": [{"system": IDS, "value": f"{pid}-nr1"}],
            "status": "active",
            "patient": subject,
            "extension": [
                {
                    "url": "http://nictiz.nl/fhir/StructureDefinition/zib-TreatmentDirective-Treatment",
                    "valueCodeableConcept": {
                        "coding": [{"system": SNOMED, "code": "89666000", "display": "Reanimatie"}]
                    },
                },
                {
                    "url": "http://nictiz.nl/fhir/StructureDefinition/zib-TreatmentDirective-TreatmentPermitted",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4.19.1",
                                "code": "NEE",
                                "display": "Nee",
                            }
                        ]
                    },
                },
            ],
            "category": [
                {"coding": [{"system": SNOMED, "code": "11291000146105", "display": "Treatment instructions"}]}
            ],
        }
        if stu3:  # STU3 Consent has one identifier, not a list
            return base | {
                "identifier": base["identifier"][0],
                "dateTime": self._ago(200),
                "policy": [{"uri": "https://wetten.overheid.nl/"}],
            }
        return base | {
            "dateTime": self._ago(200),
            "policy": [{"uri": "https://wetten.overheid.nl/"}],
            "scope": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]
            },
        }

    # -- views ------------------------------------------------------------------------------------

    def count(self) -> int:
        return sum(len(v) for v in self.resources.values())
