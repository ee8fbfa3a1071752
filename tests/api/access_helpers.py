"""Builders for access tests: care networks as plain specs, their FHIR resources, a loader, and an
independent reference model of who may see what.

The model is written from the domain rules ("who uses the hub", "consent semantics") and
the docstring of :mod:`hub.access.policy`; it deliberately imports nothing from ``hub.access`` so
that a mistake in the implementation cannot hide in the model too.

- A client sees everything in their own Patient compartment, and public reference data.
- A related person sees the delegated categories of the client they act for, while a delegation
  Consent is active and in force (a legal representative: everything the client sees).
- A professional organisation sees what it wrote, and a client's data of a category when it has an
  active care relationship with the client (active CareTeam participant within the periods, performer
  of an active ServiceRequest within its period, owner of a completed overdracht Task) and the client's
  consent allows it: the most specific applicable rule decides, a deny wins ties, and without a rule
  opt-in categories (``medisch``) are closed. With a break-the-glass reason it also sees the client's
  other data, except where the client's consent says no.
- The owner (receiver) of an overdracht Task that is not yet completed reads by the Task's state
  (the issue "Who may change what": access follows the Task state): see :data:`NOTICE_TASK`.
- An administrator sees registration, network, consent and audit data; never clinical content.
- Everybody sees reference data (``registratie``).

Writes (the same issue) are modelled at the end of this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from hub.access.decision import SystemPolicy
from tests.conformance import examples

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
ORG_TYPE_SYSTEM = "http://nictiz.nl/fhir/NamingSystem/organization-type"
ORG_TYPE_CODES = "urn:oid:2.16.840.1.113883.2.4.15.1060"
PERSON_SYSTEM = "https://zorgnet-hub.nl/fhir/NamingSystem/person-id"
CONSENT_CATEGORY = "https://zorgnet-hub.nl/fhir/CodeSystem/consent-category"
DATA_CATEGORY = "https://zorgnet-hub.nl/fhir/CodeSystem/data-category"
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
OBS_ID_SYSTEM = "urn:zorgnet-test:observation"
MANTELZORGER_SYSTEM = "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4.23.1"
ROLE_SYSTEM = "urn:oid:2.16.840.1.113883.2.4.3.11.22.472"
LOINC = "http://loinc.org"

#: Categories a consent rule or delegation may name (the hub's data-category codes of client data).
CLIENT_CATEGORIES = ("acp", "agenda", "medisch", "netwerk", "overdracht", "toestemming", "wmo", "zorgplan")
ADMIN_SEES = frozenset({"registratie", "netwerk", "toestemming", "audit"})
OPT_IN = frozenset({"medisch"})
LEGAL_ROLES = frozenset({"24", "03", "11", "15"})
#: The overdracht Task (issue: "access follows the Task state"): its receiver (owner) is in care of
#: the client from completion; before that it reads the Task, the advance notice (with the Patient
#: and what the notice's sections reference) while the Task is open, and from acceptance the nursing
#: handoff with what its sections reference. Rejected and cancelled: the Task only.
CARE_TASK = frozenset({"completed"})
NOTICE_TASK = frozenset({"requested", "received", "on-hold", "accepted", "in-progress", "completed"})
HANDOFF_TASK = frozenset({"accepted", "in-progress", "completed"})
TASK_STATES = ("requested", "received", "accepted", "on-hold", "in-progress", "completed", "rejected", "cancelled")
#: The eOverdracht steps (eOverdracht 4.0 as the issue states them): (from, to) -> the party.
TASK_STEPS: dict[tuple[str, str], str] = {
    **{
        (a, b): "receiver"
        for a in ("requested", "received")
        for b in ("received", "accepted", "rejected", "on-hold")
        if a != b
    },
    ("on-hold", "accepted"): "receiver",
    ("on-hold", "rejected"): "receiver",
    ("accepted", "in-progress"): "receiver",
    ("in-progress", "completed"): "receiver",
    **{(a, "cancelled"): "sender" for a in ("requested", "received", "on-hold", "accepted", "in-progress")},
}
HANDOFF_CODE = "371535009"
ORG_TYPES = ("Z3", "T2", "X3")
OBS_CODES = ("8867-4", "8310-5")

#: Periods relative to "now" (the test runs between 2020 and 2089): ended, current, future, open.
PERIODS: dict[str, dict[str, str] | None] = {
    "none": None,
    "current": {"start": "2020-01-01", "end": "2089-12-31"},
    "open-start": {"end": "2089-12-31"},
    "open-end": {"start": "2020-01-01"},
    "ended": {"start": "2001-01-01", "end": "2002-06-30"},
    "future": {"start": "2090-01-01", "end": "2095-01-01"},
}


def in_force(period: str) -> bool:
    p = PERIODS[period]
    if p is None:
        return True
    today = dt.date.today().isoformat()
    return p.get("start", "0000") <= today <= p.get("end", "9999")


def bsn_for(n: int) -> str:
    """A 9-digit number passing the Dutch 11-test (a valid-looking BSN), distinct per ``n``."""
    base = 10_000_000 + n * 7919
    while True:
        digits = f"{base:08d}"[:8]
        s = sum(int(d) * (9 - i) for i, d in enumerate(digits))
        last = s % 11
        if last < 10:
            return digits + str(last)
        base += 1


# -- specs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgSpec:
    ura: str
    types: tuple[str, ...]


@dataclass(frozen=True)
class Participant:
    org: int
    via: str  # "member" | "onBehalfOf" | "role" | "identifier"
    period: str


@dataclass(frozen=True)
class CareTeamSpec:
    status: str
    period: str
    participants: tuple[Participant, ...]
    author: int | None


@dataclass(frozen=True)
class ServiceRequestSpec:
    status: str
    period: str
    performer: int
    by_identifier: bool
    author: int | None


@dataclass(frozen=True)
class TaskSpec:
    status: str
    owner: int
    author: int | None


@dataclass(frozen=True)
class Actor:
    kind: str  # "org" | "ura" | "type" | "unknown"
    value: str  # org index (as text) for org/ura, type code for type


@dataclass(frozen=True)
class Provision:
    type: str
    period: str
    actors: tuple[Actor, ...]
    categories: tuple[str, ...]
    purposes: tuple[str, ...]
    children: tuple[Provision, ...] = ()


@dataclass(frozen=True)
class ConsentSpec:
    status: str
    provision: Provision
    author: int | None


@dataclass(frozen=True)
class DelegationSpec:
    status: str
    person: int
    role: str
    via_related_person: bool
    period: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class ClinicalSpec:
    kind: str  # observation | acp-observation | careplan | goal | acp-consent | appointment
    author: int | None
    code: str = OBS_CODES[0]
    performer: int | None = None
    updated_by: int | None = None  # a second version written by this org (-1: internally)
    deleted: bool = False


@dataclass(frozen=True)
class PatientSpec:
    bsn: str
    registered_by: int | None
    care_teams: tuple[CareTeamSpec, ...]
    service_requests: tuple[ServiceRequestSpec, ...]
    tasks: tuple[TaskSpec, ...]
    consents: tuple[ConsentSpec, ...]
    delegations: tuple[DelegationSpec, ...]
    clinical: tuple[ClinicalSpec, ...]


@dataclass(frozen=True)
class NetworkSpec:
    orgs: tuple[OrgSpec, ...]
    patients: tuple[PatientSpec, ...]
    persons: int


# -- strategies -------------------------------------------------------------------------------------

_period = st.sampled_from(sorted(PERIODS))


@st.composite
def _provision(draw: Any, n_orgs: int, depth: int = 0) -> Provision:
    actors = tuple(
        draw(
            st.lists(
                st.one_of(
                    st.builds(Actor, st.sampled_from(["org", "ura"]), st.integers(0, n_orgs - 1).map(str)),
                    st.builds(Actor, st.just("type"), st.sampled_from(ORG_TYPES)),
                    st.builds(Actor, st.just("unknown"), st.just("x")),
                ),
                max_size=2,
            )
        )
    )
    categories = tuple(draw(st.lists(st.sampled_from(CLIENT_CATEGORIES), max_size=2, unique=True)))
    purposes = tuple(draw(st.lists(st.sampled_from(["TREAT", "HRESCH"]), max_size=1)))
    children: tuple[Provision, ...] = ()
    if depth == 0:
        children = tuple(draw(st.lists(_provision(n_orgs, depth + 1), max_size=2)))
        if not categories and not any(c.categories for c in children):
            categories = (draw(st.sampled_from(CLIENT_CATEGORIES)),)  # zn-con-1: a consent names categories
    return Provision(
        draw(st.sampled_from(["permit", "deny"])),
        draw(st.sampled_from(["none", "none", "current", "ended", "future", "open-end"])),
        actors,
        categories,
        purposes,
        children,
    )


@st.composite
def networks(draw: Any) -> NetworkSpec:
    """A random care network: organisations, clients and everything that decides access to them."""
    n_orgs = draw(st.integers(2, 4))
    orgs = tuple(
        OrgSpec(
            f"{20000000 + i * 101 + draw(st.integers(0, 50)):08d}",
            tuple(draw(st.lists(st.sampled_from(ORG_TYPES), max_size=2, unique=True))),
        )
        for i in range(n_orgs)
    )
    persons = draw(st.integers(1, 3))
    org = st.integers(0, n_orgs - 1)
    author = st.one_of(st.none(), org)
    n_patients = draw(st.integers(1, 3))
    patients = []
    for j in range(n_patients):
        care_teams = tuple(
            draw(
                st.lists(
                    st.builds(
                        CareTeamSpec,
                        st.sampled_from(["active", "active", "inactive", "proposed"]),
                        st.sampled_from(["none", "none", "current", "ended", "future"]),
                        st.lists(
                            st.builds(
                                Participant,
                                org,
                                st.sampled_from(["member", "onBehalfOf", "role", "identifier"]),
                                st.sampled_from(["none", "none", "current", "ended"]),
                            ),
                            min_size=1,
                            max_size=3,
                        ).map(tuple),
                        author,
                    ),
                    max_size=2,
                )
            )
        )
        service_requests = tuple(
            draw(
                st.lists(
                    st.builds(
                        ServiceRequestSpec,
                        st.sampled_from(["active", "completed", "revoked"]),
                        st.sampled_from(["current", "ended", "open-end", "future"]),
                        org,
                        st.booleans(),
                        author,
                    ),
                    max_size=1,
                )
            )
        )
        tasks = tuple(draw(st.lists(st.builds(TaskSpec, st.sampled_from(TASK_STATES), org, author), max_size=2)))
        consents = tuple(
            draw(
                st.lists(
                    st.builds(
                        ConsentSpec,
                        st.sampled_from(["active", "active", "active", "inactive"]),
                        _provision(n_orgs),
                        author,
                    ),
                    max_size=3,
                )
            )
        )
        delegations = tuple(
            draw(
                st.lists(
                    st.builds(
                        DelegationSpec,
                        st.sampled_from(["active", "active", "inactive"]),
                        st.integers(0, persons - 1),
                        st.sampled_from(["100001", "100001", "24", "19"]),
                        st.booleans(),
                        st.sampled_from(["none", "current", "ended", "future"]),
                        st.lists(st.sampled_from(CLIENT_CATEGORIES), min_size=1, max_size=3, unique=True).map(tuple),
                    ),
                    max_size=2,
                )
            )
        )
        clinical = tuple(
            draw(
                st.lists(
                    st.builds(
                        ClinicalSpec,
                        st.sampled_from(
                            [
                                "observation",
                                "observation",
                                "acp-observation",
                                "careplan",
                                "goal",
                                "acp-consent",
                                "appointment",
                            ]
                        ),
                        author,
                        st.sampled_from(OBS_CODES),
                        st.one_of(st.none(), org),
                        st.one_of(st.none(), st.none(), st.just(-1), org),
                        st.sampled_from([False, False, False, True]),
                    ),
                    min_size=2,
                    max_size=7,
                )
            )
        )
        patients.append(
            PatientSpec(
                bsn_for(j + 1),
                draw(author),
                care_teams,
                service_requests,
                tasks,
                consents,
                delegations,
                clinical,
            )
        )
    return NetworkSpec(orgs, tuple(patients), persons)


# -- the FHIR resources -----------------------------------------------------------------------------


@dataclass
class Item:
    """One stored resource of a network, with what the model needs to know about it."""

    res_type: str
    res_id: str
    body: dict[str, Any]
    category: str
    patient: str | None  # the Patient compartment it is in (at most one in these networks)
    authors: set[str] = field(default_factory=set)  # URAs that wrote a version
    writer: str | None = None  # URA writing version 1 (None: internal)
    second_writer: str | None = None  # URA writing version 2; "" internal; None: no version 2
    deleted: bool = False
    identifier: tuple[str, str] | None = None
    later_versions: int = 0  # versions written by the workflow writes of the test

    @property
    def key(self) -> str:
        return f"{self.res_type}/{self.res_id}"

    @property
    def versions(self) -> int:
        return 1 + (self.second_writer is not None) + self.deleted + self.later_versions

    def references(self) -> set[str]:
        """Local references in the body (what ``_include=*`` can follow)."""
        out: set[str] = set()

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                ref = node.get("reference")
                if isinstance(ref, str) and ref.count("/") == 1 and not ref.startswith(("urn:", "#")):
                    out.add(ref)
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(self.body)
        return out


def _org_ref(orgs: tuple[OrgSpec, ...], i: int, by_identifier: bool) -> dict[str, Any]:
    if by_identifier:
        return {"identifier": {"system": URA_SYSTEM, "value": orgs[i].ura}}
    return {"reference": f"Organization/org-{i}"}


def _period_field(period: str) -> dict[str, Any]:
    p = PERIODS[period]
    return {} if p is None else {"period": dict(p)}


def _actor(a: Actor, orgs: tuple[OrgSpec, ...]) -> dict[str, Any]:
    if a.kind == "org":
        ref: dict[str, Any] = {"reference": f"Organization/org-{a.value}"}
    elif a.kind == "ura":
        ref = {"identifier": {"system": URA_SYSTEM, "value": orgs[int(a.value)].ura}}
    elif a.kind == "type":
        ref = {"identifier": {"system": ORG_TYPE_SYSTEM, "value": a.value}}
    else:
        ref = {"reference": "Organization/not-registered"}
    role = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}
    return {"role": role, "reference": ref}


def _provision_json(p: Provision, orgs: tuple[OrgSpec, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": p.type, **_period_field(p.period)}
    if p.actors:
        out["actor"] = [_actor(a, orgs) for a in p.actors]
    if p.categories:
        out["code"] = [{"coding": [{"system": DATA_CATEGORY, "code": c}]} for c in p.categories]
    if p.purposes:
        out["purpose"] = [{"system": PURPOSE_SYSTEM, "code": x} for x in p.purposes]
    if p.children:
        out["provision"] = [_provision_json(c, orgs) for c in p.children]
    return out


def _privacy_consent(cid: str, pid: str, status: str, kind: str, provision: dict[str, Any]) -> dict[str, Any]:
    body = examples.consent()
    body.update(id=cid, status=status, patient={"reference": f"Patient/{pid}"}, provision=provision)
    body["category"] = [{"coding": [{"system": CONSENT_CATEGORY, "code": kind}]}]
    return body


def build(spec: NetworkSpec) -> list[Item]:
    """The resources of a network, in a valid write order (referenced registrations first)."""
    orgs = spec.orgs
    items: list[Item] = []

    def ura(i: int | None) -> str | None:
        return None if i is None else orgs[i].ura

    for i, o in enumerate(orgs):
        body: dict[str, Any] = {
            "resourceType": "Organization",
            "id": f"org-{i}",
            "name": f"Org {i}",
            "identifier": [{"system": URA_SYSTEM, "value": o.ura}],
        }
        if o.types:
            body["type"] = [{"coding": [{"system": ORG_TYPE_CODES, "code": t}]} for t in o.types]
        items.append(Item("Organization", f"org-{i}", body, "registratie", None))
        items.append(
            Item(
                "PractitionerRole",
                f"role-{i}",
                {
                    "resourceType": "PractitionerRole",
                    "id": f"role-{i}",
                    "organization": {"reference": f"Organization/org-{i}"},
                },
                "registratie",
                None,
            )
        )
    for j, p in enumerate(spec.patients):
        pid = f"pat-{j}"
        subject = {"reference": f"Patient/{pid}"}
        items.append(
            Item(
                "Patient",
                pid,
                {
                    "resourceType": "Patient",
                    "id": pid,
                    "identifier": [{"system": BSN_SYSTEM, "value": p.bsn}],
                    "name": [{"family": f"Client{j}"}],
                },
                "netwerk",
                pid,
                writer=ura(p.registered_by),
            )
        )
        for k in range(spec.persons):
            for role in ("100001", "24", "19"):
                items.append(
                    Item(
                        "RelatedPerson",
                        f"rp-{j}-{k}-{role}",
                        {
                            "resourceType": "RelatedPerson",
                            "id": f"rp-{j}-{k}-{role}",
                            "patient": subject,
                            "identifier": [{"system": PERSON_SYSTEM, "value": f"person-{k}"}],
                            "relationship": [
                                {
                                    "coding": [
                                        {
                                            "system": MANTELZORGER_SYSTEM if role == "100001" else ROLE_SYSTEM,
                                            "code": role,
                                        }
                                    ]
                                }
                            ],
                        },
                        "netwerk",
                        pid,
                    )
                )
        for n, ct in enumerate(p.care_teams):
            parts: list[dict[str, Any]] = [{"member": subject}]
            for pa in ct.participants:
                part: dict[str, Any] = _period_field(pa.period)
                if pa.via == "member":
                    part["member"] = {"reference": f"Organization/org-{pa.org}"}
                elif pa.via == "onBehalfOf":
                    part["member"] = {"reference": f"PractitionerRole/role-{pa.org}"}
                    part["onBehalfOf"] = {"reference": f"Organization/org-{pa.org}"}
                elif pa.via == "role":
                    part["member"] = {"reference": f"PractitionerRole/role-{pa.org}"}
                else:
                    part["member"] = _org_ref(orgs, pa.org, True)
                parts.append(part)
            items.append(
                Item(
                    "CareTeam",
                    f"ct-{j}-{n}",
                    {
                        "resourceType": "CareTeam",
                        "id": f"ct-{j}-{n}",
                        "status": ct.status,
                        "subject": subject,
                        **_period_field(ct.period),
                        "participant": parts,
                    },
                    "netwerk",
                    pid,
                    writer=ura(ct.author),
                )
            )
        for n, sr in enumerate(p.service_requests):
            body = examples.toewijzing()
            body.pop("basedOn", None)
            body.update(
                id=f"sr-{j}-{n}",
                status=sr.status,
                subject=subject,
                performer=[_org_ref(orgs, sr.performer, sr.by_identifier)],
            )
            body["identifier"][0]["value"] = f"TW-{j}-{n}"
            body.pop("occurrencePeriod")
            if PERIODS[sr.period] is not None:
                body["occurrencePeriod"] = dict(PERIODS[sr.period] or {})
            items.append(Item("ServiceRequest", f"sr-{j}-{n}", body, "wmo", pid, writer=ura(sr.author)))
        clinical_keys = [f"{c.kind}-{j}-{n}" for n, c in enumerate(p.clinical)]
        clinical_types = {
            "observation": "Observation",
            "acp-observation": "Observation",
            "careplan": "CarePlan",
            "goal": "Goal",
            "acp-consent": "Consent",
            "appointment": "Appointment",
        }
        entry_refs = [f"{clinical_types[c.kind]}/{clinical_keys[n]}" for n, c in enumerate(p.clinical)]
        for n, t in enumerate(p.tasks):
            body = examples.overdracht_task()
            body.update(id=f"task-{j}-{n}", status=t.status, owner={"reference": f"Organization/org-{t.owner}"})
            body["for"] = subject
            if t.author is not None:  # the sender: the organisation that wrote it
                body["requester"] = {"reference": f"Organization/org-{t.author}"}
            body["input"][0]["valueReference"] = {"reference": f"Composition/notice-{j}-{n}"}
            if t.status in HANDOFF_TASK:  # zn-ovd-1: a completed overdracht carries the handoff
                body["input"].append(
                    {
                        "type": {"coding": [{"system": "http://snomed.info/sct", "code": HANDOFF_CODE}]},
                        "valueReference": {"reference": f"Composition/handoff-{j}-{n}"},
                    }
                )
            if t.status == "rejected":
                body["statusReason"] = {"text": "geen capaciteit"}
            if t.status == "on-hold":  # zn-ovd-3: the proposed date
                body["restriction"] = {"period": {"start": "2030-01-06"}}
            items.append(Item("Task", f"task-{j}-{n}", body, "overdracht", pid, writer=ura(t.author)))
            author_ref = [{"reference": f"Organization/org-{t.author if t.author is not None else t.owner}"}]
            notice = {
                "resourceType": "Composition",
                "id": f"notice-{j}-{n}",
                "status": "final",
                "type": {"coding": [{"system": LOINC, "code": "57830-2"}]},
                "subject": subject,
                "date": "2026-11-20T10:00:00+01:00",
                "author": author_ref,
                "title": "Aanmeldbericht",
                "section": [
                    {"title": "Persoonsgegevens", "entry": [subject]},
                    {"title": "Zorgplan", "entry": [{"reference": entry_refs[0]}]},
                ],
            }
            handoff = examples.handoff_composition()
            handoff.update(id=f"handoff-{j}-{n}", subject=subject, author=author_ref)
            handoff["section"][2]["entry"] = [{"reference": entry_refs[-1]}]
            items.append(Item("Composition", f"notice-{j}-{n}", notice, "overdracht", pid, writer=ura(t.author)))
            items.append(Item("Composition", f"handoff-{j}-{n}", handoff, "overdracht", pid, writer=ura(t.author)))
        for n, c in enumerate(p.consents):
            provision = _provision_json(c.provision, orgs)
            body = _privacy_consent(f"cons-{j}-{n}", pid, c.status, "gegevensdeling", provision)
            items.append(Item("Consent", f"cons-{j}-{n}", body, "toestemming", pid, writer=ura(c.author)))
        for n, d in enumerate(p.delegations):
            if d.via_related_person:
                ref: dict[str, Any] = {"reference": f"RelatedPerson/rp-{j}-{d.person}-{d.role}"}
            else:
                ref = {"identifier": {"system": PERSON_SYSTEM, "value": f"person-{d.person}"}}
            prov: dict[str, Any] = {
                "type": "permit",
                **_period_field(d.period),
                "actor": [
                    {
                        "role": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "DELEGATEE",
                                }
                            ]
                        },
                        "reference": ref,
                    }
                ],
                "code": [{"coding": [{"system": DATA_CATEGORY, "code": c}]} for c in d.categories],
            }
            body = _privacy_consent(f"deleg-{j}-{n}", pid, d.status, "delegatie", prov)
            items.append(Item("Consent", f"deleg-{j}-{n}", body, "toestemming", pid))
        for n, c in enumerate(p.clinical):
            cid = f"{c.kind}-{j}-{n}"
            ident: tuple[str, str] | None = None
            if c.kind == "observation":
                ident = (OBS_ID_SYSTEM, f"obs-{j}-{n}")
                body = {
                    "resourceType": "Observation",
                    "id": cid,
                    "status": "final",
                    "identifier": [{"system": ident[0], "value": ident[1]}],
                    "code": {"coding": [{"system": LOINC, "code": c.code}]},
                    "subject": subject,
                    "valueQuantity": {
                        "value": 60 + n,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                }
                if c.performer is not None:
                    body["performer"] = [{"reference": f"Organization/org-{c.performer}"}]
                res_type, category = "Observation", "medisch"
            elif c.kind == "acp-observation":
                body = examples.euthanasia_position()
                body.pop("encounter", None)
                body.update(id=cid, subject=subject)
                res_type, category = "Observation", "acp"
            elif c.kind == "careplan":
                body = examples.care_plan()
                body.pop("careTeam", None)
                body.pop("goal", None)
                body.update(id=cid, subject=subject)
                if c.performer is not None:  # the first activity is this organisation's
                    body["activity"][0]["detail"]["performer"] = [{"reference": f"PractitionerRole/role-{c.performer}"}]
                res_type, category = "CarePlan", "zorgplan"
            elif c.kind == "goal":
                body = examples.client_goal()
                body.update(id=cid, subject=subject, expressedBy=subject)
                res_type, category = "Goal", "zorgplan"
            elif c.kind == "acp-consent":
                body = examples.treatment_directive()
                body.update(id=cid, patient=subject)
                body["provision"]["actor"][0]["reference"] = {"reference": f"Patient/{pid}", "type": "Patient"}
                res_type, category = "Consent", "acp"
            else:
                body = {
                    "resourceType": "Appointment",
                    "id": cid,
                    "status": "booked",
                    "start": "2030-01-01T10:00:00Z",
                    "end": "2030-01-01T11:00:00Z",
                    "participant": [{"actor": subject, "status": "accepted"}],
                }
                res_type, category = "Appointment", "agenda"
            second = None if c.updated_by is None else ("" if c.updated_by < 0 else orgs[c.updated_by].ura)
            items.append(
                Item(
                    res_type,
                    cid,
                    body,
                    category,
                    pid,
                    writer=ura(c.author),
                    second_writer=second,
                    deleted=c.deleted,
                    identifier=ident,
                )
            )
    for it in items:
        it.authors = {u for u in (it.writer, it.second_writer) if u}
    return items


# -- loading ----------------------------------------------------------------------------------------


class _WrittenBy(SystemPolicy):
    """The hub's own policy (it allows everything) naming the writing organisation, so that the hub's
    own write path records authorship exactly as it does for a professional's write."""

    def __init__(self, ura: str | None) -> None:
        self.author_ura = ura

    async def check_write(self, *args: Any) -> Any:
        """No refusal; the writing organisation is recorded as the creator of what it creates."""
        from hub.workflows.check import WriteVerdict

        current = args[4]
        creates = current is None or current.deleted
        ura = self.author_ura
        return WriteVerdict(owners=(f"ura:{ura}",) if ura and creates else ())


async def register_organisations(conn: Any, items: list[Item]) -> None:
    """What an administrator does for the network's organisations: register their URA and types
    (the registry, not the Organization resources, is what access decisions trust)."""
    from hub.access.organisations import register

    for it in items:
        if it.res_type != "Organization":
            continue
        ura = next(i["value"] for i in it.body["identifier"] if i["system"] == URA_SYSTEM)
        types = [c["code"] for t in it.body.get("type") or [] for c in t["coding"]]
        await register(conn, ura, name=it.body.get("name", ""), types=types)


async def load(app: Any, items: list[Item]) -> None:
    """Write the network in one transaction through the repository (internal, authorship kept)."""
    repo = app.state.services.repo
    async with repo.db.write() as conn:
        await register_organisations(conn, items)
        for it in items:
            await repo.with_policy(_WrittenBy(it.writer)).update(it.res_type, it.res_id, it.body, conn=conn)
        for it in items:
            if it.second_writer is not None:
                await repo.with_policy(_WrittenBy(it.second_writer or None)).update(
                    it.res_type, it.res_id, {**it.body, "language": "nl"}, conn=conn
                )
        for it in items:
            if it.deleted:
                await repo.delete(it.res_type, it.res_id, conn=conn)


# -- the reference model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    """A caller: its token spec, and for professionals whether it breaks the glass."""

    spec: str
    emergency: bool = False

    @property
    def kind(self) -> str:
        head = self.spec.split(":")[0]
        return {"org": "professional", "client": "client", "person": "related", "admin": "admin"}[head]

    def headers(self) -> dict[str, str]:
        return {"X-Break-Glass": "acute opname, client niet aanspreekbaar"} if self.emergency else {}


@dataclass(frozen=True)
class Rule:
    decision: str
    category: str | None
    ura: str | None
    org_type: str | None
    purpose: str | None


class Model:
    """Who may see which item of a network (computed from the specs, not from the database)."""

    def __init__(self, spec: NetworkSpec, items: list[Item]) -> None:
        self.spec = spec
        self.items = items
        self.by_key = {it.key: it for it in items}
        self.orgs = spec.orgs
        self.patient_of_bsn = {p.bsn: f"pat-{j}" for j, p in enumerate(spec.patients)}
        self.relations: dict[str, set[str]] = {}
        self.rules: dict[str, list[Rule]] = {}
        self.delegations: dict[tuple[int, str], list[DelegationSpec]] = {}
        for j, p in enumerate(spec.patients):
            pid = f"pat-{j}"
            self.relations[pid] = self._relations(p)
            self.rules[pid] = [r for c in p.consents if c.status == "active" for r in self._flatten(c.provision, None)]
            for d in p.delegations:
                if d.status == "active" and in_force(d.period):
                    self.delegations.setdefault((d.person, pid), []).append(d)
        self.handed = self._handed()

    def _relations(self, p: PatientSpec) -> set[str]:
        out: set[str] = set()
        for ct in p.care_teams:
            if ct.status != "active" or not in_force(ct.period):
                continue
            out |= {self.orgs[pa.org].ura for pa in ct.participants if in_force(pa.period)}
        for sr in p.service_requests:
            if sr.status == "active" and in_force(sr.period):
                out.add(self.orgs[sr.performer].ura)
        for t in p.tasks:
            if t.status in CARE_TASK:
                out.add(self.orgs[t.owner].ura)
        return out

    def _handed(self) -> dict[str, set[str]]:
        """What each organisation reads as the receiver of an overdracht, by the Task's state."""
        out: dict[str, set[str]] = {}
        for j, p in enumerate(self.spec.patients):
            entries = [f"{k}" for k in (self._clinical_key(j, 0), self._clinical_key(j, len(p.clinical) - 1))]
            for n, t in enumerate(p.tasks):
                seen = out.setdefault(self.orgs[t.owner].ura, set())
                seen.add(f"Task/task-{j}-{n}")
                if t.status in NOTICE_TASK:
                    seen |= {f"Patient/pat-{j}", f"Composition/notice-{j}-{n}", entries[0]}
                body = self.by_key[f"Task/task-{j}-{n}"].body
                attached = any(HANDOFF_CODE in str(i.get("type")) for i in body.get("input", []))
                if t.status in HANDOFF_TASK and attached:
                    seen |= {f"Composition/handoff-{j}-{n}", entries[1]}
        return out

    def _clinical_key(self, j: int, n: int) -> str:
        c = self.spec.patients[j].clinical[n]
        res_type = {
            "observation": "Observation",
            "acp-observation": "Observation",
            "careplan": "CarePlan",
            "goal": "Goal",
            "acp-consent": "Consent",
            "appointment": "Appointment",
        }[c.kind]
        return f"{res_type}/{c.kind}-{j}-{n}"

    def task_status(self, key: str) -> str:
        return str(self.by_key[key].body["status"])

    def set_task_status(self, key: str, status: str) -> None:
        """A Task moved: its receiver's reading follows (the spec is the model's source)."""
        j, n = (int(x) for x in key.split("-")[1:3])
        p = self.spec.patients[j]
        tasks = list(p.tasks)
        tasks[n] = TaskSpec(status, tasks[n].owner, tasks[n].author)
        patients = list(self.spec.patients)
        patients[j] = PatientSpec(
            p.bsn,
            p.registered_by,
            p.care_teams,
            p.service_requests,
            tuple(tasks),
            p.consents,
            p.delegations,
            p.clinical,
        )
        self.spec = NetworkSpec(self.spec.orgs, tuple(patients), self.spec.persons)
        self.by_key[key].body["status"] = status
        self.relations[f"pat-{j}"] = self._relations(self.spec.patients[j])
        self.handed = self._handed()

    def _flatten(self, p: Provision, parent: dict[str, Any] | None) -> list[Rule]:
        """Rules in force now: a nested provision narrows its parent and inherits what it leaves out."""
        actors = p.actors or (parent["actors"] if parent else ())
        cats = p.categories or (parent["cats"] if parent else ())
        purposes = p.purposes or (parent["purposes"] if parent else ())
        live = in_force(p.period) and (parent is None or parent["live"])
        here = {"actors": actors, "cats": cats, "purposes": purposes, "live": live}
        out: list[Rule] = []
        if live:
            who: list[tuple[str | None, str | None]] = []
            for a in actors:
                if a.kind in ("org", "ura"):
                    who.append((self.orgs[int(a.value)].ura, None))
                elif a.kind == "type":
                    who.append((None, a.value))
            if not actors:
                who = [(None, None)]
            for u, t in who:
                for c in cats or (None,):
                    for pu in purposes or (None,):
                        out.append(Rule(p.type, c, u, t, pu))
        for child in p.children:
            out.extend(self._flatten(child, here))
        return out

    def types_of(self, ura: str) -> frozenset[str]:
        return frozenset(t for o in self.orgs if o.ura == ura for t in o.types)

    def decision(self, pid: str, category: str, ura: str) -> str:
        """permit / deny / closed for a professional's treatment use."""
        types = self.types_of(ura)
        applicable = [
            r
            for r in self.rules[pid]
            if r.category in (None, category)
            and r.ura in (None, ura)
            and (r.org_type is None or r.org_type in types)
            and r.purpose in (None, "TREAT")
        ]
        if not applicable:
            return "closed" if category in OPT_IN else "permit"

        def rank(r: Rule) -> int:
            return (2 if r.ura else 1 if r.org_type else 0) + (1 if r.category else 0)

        top = max(rank(r) for r in applicable)
        return "deny" if any(r.decision == "deny" and rank(r) == top for r in applicable) else "permit"

    def sees(self, who: Who, it: Item) -> bool:
        if it.category == "registratie":
            return True
        parts = who.spec.split(":")
        if parts[0] == "admin":
            return it.category in ADMIN_SEES
        if parts[0] == "client":
            return it.patient is not None and it.patient == self.patient_of_bsn.get(parts[1])
        if parts[0] == "person":
            pid = self.patient_of_bsn.get(parts[3])
            if pid is None or it.patient != pid:
                return False
            ds = self.delegations.get((int(parts[1].split("-")[1]), pid), [])
            if any(d.role in LEGAL_ROLES and d.via_related_person for d in ds):
                return True
            return any(it.category in d.categories for d in ds)
        ura = parts[1]
        if ura in it.authors or it.key in self.handed.get(ura, ()):
            return True
        if it.patient is None or it.category == "audit":
            return False
        decision = self.decision(it.patient, it.category, ura)
        if ura in self.relations[it.patient] and decision == "permit":
            return True
        return who.emergency and decision != "deny"

    def explain(self, who: Who, key: str) -> str:
        """Why the model decided as it did (for failure messages)."""
        it = self.by_key.get(key)
        if it is None or it.patient is None:
            return ""
        ura = who.spec.split(":")[1] if who.kind == "professional" else None
        rules = self.rules[it.patient]
        extra = (
            ""
            if ura is None
            else (
                f" decision={self.decision(it.patient, it.category, ura)} related={ura in self.relations[it.patient]}"
                f" types={sorted(self.types_of(ura))}"
            )
        )
        return f"category={it.category} authors={sorted(it.authors)} rules={rules}{extra}"

    def visible(self, who: Who, res_type: str | None = None, *, live: bool = True) -> set[str]:
        return {
            it.key
            for it in self.items
            if (res_type is None or it.res_type == res_type) and (not live or not it.deleted) and self.sees(who, it)
        }


def principals(spec: NetworkSpec, data: Any) -> list[Who]:
    """Every kind of caller: admin, each client and a stranger, each delegate (for a drawn client) and
    one without delegation, each organisation (some also breaking the glass), and an organisation the
    network does not know."""
    out = [Who("admin")]
    out += [Who(f"client:{p.bsn}") for p in spec.patients]
    out.append(Who(f"client:{bsn_for(99)}"))
    for k in range(spec.persons):
        p = data.draw(st.sampled_from(spec.patients))
        out.append(Who(f"person:person-{k}:for:{p.bsn}"))
    out.append(Who(f"person:person-9:for:{spec.patients[0].bsn}"))
    for o in spec.orgs:
        out.append(Who(f"org:{o.ura}", emergency=data.draw(st.booleans())))
    out.append(Who("org:29999999"))  # (breaking the glass is refused to it: test_leaks)
    return out


# -- the reference model of writes -------------------------------------------------------------------
# From the issue "Who may change what": a caller first needs the right to write such data at all
# (DOMAIN.md "Who uses the hub"; hub.access.policy's docstring), then the change must be theirs:
# the creator (or the party a resource names as its author, here Goal.expressedBy) may update and
# delete; others change only the shared care plan activities they perform; an overdracht Task moves
# only by TASK_STEPS, each step by its party.

CLIENT_WRITES = frozenset({"acp", "zorgplan", "netwerk", "toestemming", "agenda", "documenten"})
CLOSED_TASK = frozenset({"completed", "rejected", "cancelled"})


def _parts(who: Who) -> list[str]:
    return who.spec.split(":")


def may_write(m: Model, who: Who, it: Item) -> bool:
    """The caller may write data like ``it`` at all (before any workflow rule)."""
    parts = _parts(who)
    pid = it.patient
    if parts[0] == "admin":
        return it.category in ADMIN_SEES
    if parts[0] == "client":
        return it.category in CLIENT_WRITES and pid == m.patient_of_bsn.get(parts[1])
    if parts[0] == "person":
        if pid is None or m.patient_of_bsn.get(parts[3]) != pid:
            return False
        ds = m.delegations.get((int(parts[1].split("-")[1]), pid), [])
        if any(d.role in LEGAL_ROLES and d.via_related_person for d in ds):
            return True
        return any(it.category in d.categories for d in ds) and it.category != "toestemming"
    ura = parts[1]
    if who.emergency or it.category in ("toestemming", "audit"):
        return False
    if pid is None:
        return True
    registered = m.by_key[f"Patient/{pid}"].writer == ura
    receiver = it.res_type == "Task" and it.key in m.handed.get(ura, ())
    return ura in m.relations[pid] or registered or receiver


def parties(m: Model, who: Who) -> set[str]:
    parts = _parts(who)
    if parts[0] == "org":
        return {f"ura:{parts[1]}"}
    if parts[0] == "client":
        pid = m.patient_of_bsn.get(parts[1])
        return {f"patient:{pid}"} if pid else set()
    if parts[0] == "person":
        out = {f"person:{parts[1]}"}
        pid = m.patient_of_bsn.get(parts[3])
        ds = m.delegations.get((int(parts[1].split("-")[1]), pid or ""), [])
        if pid and any(d.role in LEGAL_ROLES and d.via_related_person for d in ds):
            out.add(f"patient:{pid}")
        return out
    return {"admin"}


def owners(it: Item) -> set[str]:
    out = {f"ura:{it.writer}"} if it.writer else set()
    if it.res_type == "Goal":
        ref = it.body.get("expressedBy", {}).get("reference", "")
        if ref.startswith("Patient/"):
            out.add(f"patient:{ref.split('/')[1]}")
    return out


def expect_delete(m: Model, who: Who, it: Item) -> int:
    if not m.sees(who, it):
        return 404
    if not may_write(m, who, it):
        return 403
    own = owners(it)
    return 200 if not own or own & parties(m, who) or who.kind == "admin" else 403


def expect_activity_status(m: Model, who: Who, it: Item) -> int:
    """PATCH of ``CarePlan.activity[0].detail.status``: the coordinator, or the activity's performer."""
    if not m.sees(who, it):
        return 404
    if not may_write(m, who, it):
        return 403
    own = owners(it)
    if not own or own & parties(m, who):
        return 200
    if it.body["activity"][0]["detail"].get("status") == "completed":
        return 200  # already completed: the patch changes nothing the rules protect
    performer = it.body["activity"][0]["detail"].get("performer", [{}])[0].get("reference", "")
    if who.kind == "professional" and performer.startswith("PractitionerRole/role-"):
        return 200 if m.orgs[int(performer.split("-")[-1])].ura == _parts(who)[1] else 403
    return 403


def task_roles(m: Model, who: Who, key: str) -> set[str]:
    if who.kind != "professional":
        return set()
    j, n = (int(x) for x in key.split("-")[1:3])
    t = m.spec.patients[j].tasks[n]
    ura = _parts(who)[1]
    roles = set()
    if t.author is not None and m.orgs[t.author].ura == ura:
        roles.add("sender")
    if m.orgs[t.owner].ura == ura:
        roles.add("receiver")
    return roles


def expect_task_step(m: Model, who: Who, it: Item, new: str) -> int:
    if not m.sees(who, it):
        return 404
    if not may_write(m, who, it):
        return 403  # permission before validation
    has_handoff = any(HANDOFF_CODE in str(i.get("type")) for i in it.body.get("input", []))
    if new == "completed" and not has_handoff:
        return 422  # zn-ovd-1 (the profile) and the state machine: completion carries the handoff
    old = m.task_status(it.key)
    step = TASK_STEPS.get((old, new))
    if old in CLOSED_TASK or step is None or step not in task_roles(m, who, it.key):
        return 409
    return 200


def expect_goal_update(m: Model, who: Who, it: Item) -> int:
    """A Goal's update: its author, the client whose own goal it is (Goal.expressedBy), their legal
    representative, and a mantelzorger with ``zorgplan`` (the client's own goals, ClientGoal)."""
    if not m.sees(who, it):
        return 404
    if not may_write(m, who, it):
        return 403
    own = owners(it)
    if not own or own & parties(m, who):
        return 200
    if who.kind == "related" and f"patient:{it.patient}" in own:
        return 200
    return 403


def task_parties(m: Model, key: str) -> list[Who]:
    """The sender (if known) and the receiver of a Task, as callers."""
    j, n = (int(x) for x in key.split("-")[1:3])
    t = m.spec.patients[j].tasks[n]
    out = [Who(f"org:{m.orgs[t.owner].ura}")]
    if t.author is not None:
        out.append(Who(f"org:{m.orgs[t.author].ura}"))
    return out
