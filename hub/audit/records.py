"""What one interaction leaves in the log: :class:`AuditRecord` (plain facts from the dispatcher) and
the AuditEvent JSON built from it, shaped after IHE Basic Audit Log Patterns (BALP) with the
NEN 7513 facts: who (application, organisation URA, practitioner or person), on whose behalf,
which client, what, when, why (purpose of use), and how it ended (outcome, denial reason).

The record holds plain values only (strings, tuples), so that the audit package depends on
nothing but the standard library and the hub's JSON tools; :meth:`AuditRecord.from_principal`
copies the facts from a :class:`hub.access.principal.Principal` by attribute name.

The search columns stored next to the JSON are derived by one function, :func:`index_facts`,
from the JSON itself. The writer takes them from the record (no re-parse on the hot path);
verification re-derives them from the stored JSON, so an index row that was changed or removed
(for instance to hide an access from the client's own view) is found as tampering too.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.audit.canonical import canonical_trusted
from hub.fhir.instants import now_us, to_iso
from hub.fhir.validation.bsn import BSN_SYSTEM

# --- code systems -------------------------------------------------------------------------------------------
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
HUB_SUBTYPE = "https://zorgnet-hub.nl/fhir/CodeSystem/audit-subtype"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
CLIENT_ID_SYSTEM = "https://zorgnet-hub.nl/fhir/NamingSystem/client-id"
PERSON_ID_SYSTEM = "https://zorgnet-hub.nl/fhir/NamingSystem/person-id"
HUB_ORIGIN = "https://zorgnet-hub.nl/fhir/NamingSystem/hub"
BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"

#: REST interaction -> (BALP action, subtype system, BALP profile).
_REST: dict[str, tuple[str, str]] = {
    "read": ("R", "IHE.BasicAudit.Read"),
    "vread": ("R", "IHE.BasicAudit.Read"),
    "search-type": ("E", "IHE.BasicAudit.Query"),
    "search-system": ("E", "IHE.BasicAudit.Query"),
    "search-compartment": ("E", "IHE.BasicAudit.Query"),
    "history-instance": ("R", "IHE.BasicAudit.Read"),
    "history-type": ("E", "IHE.BasicAudit.Query"),
    "history-system": ("E", "IHE.BasicAudit.Query"),
    "capabilities": ("R", "IHE.BasicAudit.Read"),
    "create": ("C", "IHE.BasicAudit.Create"),
    "update": ("U", "IHE.BasicAudit.Update"),
    "conditional-update": ("U", "IHE.BasicAudit.Update"),
    "patch": ("U", "IHE.BasicAudit.Update"),
    "conditional-patch": ("U", "IHE.BasicAudit.Update"),
    "delete": ("D", "IHE.BasicAudit.Delete"),
    "conditional-delete": ("D", "IHE.BasicAudit.Delete"),
    "operation": ("E", "IHE.BasicAudit.Query"),
    "transaction": ("E", "IHE.BasicAudit.Create"),
    "batch": ("E", "IHE.BasicAudit.Create"),
}
#: Authentication events: login (a person signs in) and token (an access token is issued).
_AUTH: dict[str, tuple[str, str, str]] = {
    "login": (DCM, "110122", "Login"),
    "token": (HUB_SUBTYPE, "token", "Access token issued"),
}
#: The interactions an :class:`AuditRecord` may name.
INTERACTIONS: frozenset[str] = frozenset(_REST) | frozenset(_AUTH)
#: BALP's FHIR subtype code for the interactions the hub spells differently.
_SUBTYPE_CODE = {
    "search-compartment": "search-type",
    "conditional-update": "update",
    "conditional-patch": "patch",
    "conditional-delete": "delete",
}


def outcome_code(status: int) -> str:
    """HTTP status -> AuditEvent.outcome: 0 success, 4 minor failure (the caller's error or a
    denial), 8 serious failure (the hub's error), 12 major failure (no answer at all)."""
    if 100 <= status < 400:
        return "0"
    if 400 <= status < 500:
        return "4"
    if 500 <= status < 600:
        return "8"
    return "12"


@dataclass(slots=True)
class AuditRecord:
    """The facts of one interaction, allowed or denied, as the dispatcher knows them.

    - ``interaction``: one of :data:`INTERACTIONS` (the hub's route kinds plus ``transaction``,
      ``batch``, ``login``, ``token``); ``status`` the HTTP status answered (denials: 401/403).
    - principal facts: ``principal_kind`` (professional, client, related, admin, system or None
      for an unauthenticated call), ``subject``, ``client_id``, ``organisation_ura``,
      ``practitioner`` (system, value), ``person_id``, ``patient_bsn``, ``acting_for`` (the BSN
      acted for), ``relation`` (role code), ``scopes``.
    - the request: ``method``, ``path`` (relative to the FHIR base), ``query`` (the query string),
      ``operation`` (for ``$op``), ``remote_addr``, ``request_id``.
    - ``resources``: (type, id, version or None) touched by the interaction (not every match of
      a search: a search is recorded by its query plus the clients whose data it returned).
    - ``patient_ids``: ids of the Patient resources whose data was returned or touched: what
      "who saw my data" searches on.
    - ``purpose_of_use``: v3-ActReason codes (e.g. ``TREAT``, ``PATRQT``); ``emergency_reason``
      marks break-the-glass (adds ``ETREAT``/``BTG``); ``denial_reason`` says why access was refused.
    """

    interaction: str
    status: int
    principal_kind: str | None = None
    subject: str | None = None
    client_id: str | None = None
    organisation_ura: str | None = None
    practitioner: tuple[str, str] | None = None
    person_id: str | None = None
    patient_bsn: str | None = None
    acting_for: str | None = None
    relation: str | None = None
    scopes: tuple[str, ...] = ()
    method: str = ""
    path: str = ""
    query: str = ""
    operation: str | None = None
    remote_addr: str | None = None
    request_id: str | None = None
    resources: tuple[tuple[str, str, str | None], ...] = ()
    patient_ids: tuple[str, ...] = ()
    purpose_of_use: tuple[str, ...] = ()
    emergency_reason: str | None = None
    denial_reason: str | None = None
    recorded_us: int = field(default_factory=now_us)

    @classmethod
    def from_principal(cls, principal: Any, interaction: str, status: int, **facts: Any) -> AuditRecord:
        """A record with the principal's facts copied (``principal`` may be None: unauthenticated)."""
        if principal is not None:
            for name in (
                "subject",
                "client_id",
                "organisation_ura",
                "practitioner",
                "person_id",
                "patient_bsn",
                "acting_for",
                "relation",
            ):
                facts.setdefault(name, getattr(principal, name, None))
            facts.setdefault("principal_kind", getattr(principal, "kind", None))
            facts.setdefault("scopes", tuple(sorted(getattr(principal, "scopes", ()) or ())))
        return cls(interaction, status, **facts)


@dataclass(frozen=True, slots=True)
class IndexFacts:
    """The search columns of one audit row (see :mod:`hub.audit.tables`)."""

    recorded_us: int
    type_code: str
    interaction: str
    action: str
    outcome: str
    agent_client: str | None
    agent_ura: str | None
    agent_user: str | None
    patient_ids: tuple[str, ...]
    entities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A record ready to be chained: its canonical JSON and its search columns."""

    event: bytes
    facts: IndexFacts


def _coding(system: str, code: str, _display: str | None = None) -> dict[str, str]:
    """A Coding; displays are left out (they are the code system's, and a billion rows carry them)."""
    return {"system": system, "code": code}


def _ident(system: str, value: str) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": value}}


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


class _Shared:
    """The parts of AuditEvents that the records of one interaction have in common (who asked, how,
    when), built once for all of them by :func:`prepare_many`: a search over many clients logs one
    record per client. The parts are shared between the events, which are serialized at once and
    never changed."""

    __slots__ = ("agents", "instants", "queries")

    def __init__(self) -> None:
        self.agents: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self.instants: dict[int, str] = {}
        self.queries: dict[tuple[str, str, str, str | None], dict[str, Any]] = {}

    def agents_of(self, r: AuditRecord) -> list[dict[str, Any]]:
        key = (
            r.client_id,
            r.principal_kind,
            r.scopes,
            r.remote_addr,
            r.practitioner,
            r.person_id,
            r.relation,
            r.patient_bsn,
            r.organisation_ura,
            r.acting_for,
        )
        agents = self.agents.get(key)
        if agents is None:
            agents = self.agents[key] = _agents(r)
        return agents

    def instant(self, us: int) -> str:
        iso = self.instants.get(us)
        if iso is None:
            iso = self.instants[us] = to_iso(us)
        return iso

    def query_of(self, r: AuditRecord) -> dict[str, Any]:
        key = (r.method, r.path, r.query, r.request_id)
        query = self.queries.get(key)
        if query is None:
            query = self.queries[key] = _query_entity(r)
        return query


def build_event(record: AuditRecord, *, source: str = "zorgnet-hub", shared: _Shared | None = None) -> dict[str, Any]:
    """The AuditEvent (R4, BALP-shaped) for ``record``, without ``id`` (the log position is the id)."""
    shared = shared or _Shared()
    kind = record.interaction
    if kind in _AUTH:
        system, code, display = _AUTH[kind]
        action, profile = "E", "IHE.BasicAudit.Read"
        event_type = _coding(DCM, "110114", "User Authentication")
        subtype = [_coding(system, code, display)]
    elif kind in _REST:
        action, profile = _REST[kind]
        event_type = _coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation")
        subtype = [_coding(RESTFUL_INTERACTION, _SUBTYPE_CODE.get(kind, kind))]
        if record.operation:
            subtype.append(_coding(HUB_SUBTYPE, "$" + record.operation.lstrip("$")))
    else:
        raise ValueError(f"unknown audit interaction {kind!r}")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "meta": {"profile": [BALP + profile]},
        "type": event_type,
        "subtype": subtype,
        "action": action,
        "recorded": shared.instant(record.recorded_us),
        "outcome": outcome_code(record.status),
        "agent": shared.agents_of(record),
        "source": {
            "observer": _ident(HUB_ORIGIN, source),
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if record.denial_reason:
        event["outcomeDesc"] = record.denial_reason
    purposes = list(_unique(record.purpose_of_use))
    if record.emergency_reason:
        purposes += [p for p in ("ETREAT", "BTG") if p not in purposes]
    if purposes:
        pou: dict[str, Any] = {"coding": [_coding(ACT_REASON, p) for p in purposes]}
        if record.emergency_reason:
            pou["text"] = record.emergency_reason
        event["purposeOfEvent"] = [pou]
    entities = _entities(record, shared)
    if entities:
        event["entity"] = entities
    return event


def _agents(r: AuditRecord) -> list[dict[str, Any]]:
    """Application, organisation, user (practitioner, person or client), acted-for client.

    Exactly one agent is the requestor: the most specific human (practitioner, person, client),
    else the organisation, else the application.
    """
    agents: list[dict[str, Any]] = []
    app: dict[str, Any] = {
        "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
        "requestor": False,
    }
    if r.client_id:
        app["who"] = _ident(CLIENT_ID_SYSTEM, r.client_id)
    if r.principal_kind:
        app["role"] = [{"coding": [_coding(HUB_SUBTYPE, "principal-" + r.principal_kind)]}]
    if r.scopes:
        app["policy"] = list(r.scopes)
    if r.remote_addr:
        app["network"] = {"address": r.remote_addr, "type": "2"}
    agents.append(app)
    user: dict[str, Any] | None = None
    if r.practitioner:
        user = {
            "type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
            "who": _ident(r.practitioner[0], r.practitioner[1]),
        }
    elif r.person_id:
        user = {
            "type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
            "who": _ident(PERSON_ID_SYSTEM, r.person_id),
        }
        if r.relation:
            user["role"] = [{"coding": [_coding(HUB_SUBTYPE, "relation-" + r.relation)]}]
    elif r.principal_kind == "client" and r.patient_bsn:
        user = {"type": {"coding": [_coding(ROLE_CLASS, "PAT", "patient")]}, "who": _ident(BSN_SYSTEM, r.patient_bsn)}
    if r.organisation_ura:
        org = {
            "type": {"coding": [_coding(ROLE_CLASS, "PROV", "healthcare provider")]},
            "who": _ident(URA_SYSTEM, r.organisation_ura),
            "requestor": user is None,
        }
        agents.append(org)
    if user is not None:
        user["requestor"] = True
        agents.append(user)
    elif not r.organisation_ura:
        app["requestor"] = True
    if r.acting_for:
        agents.append(
            {
                "type": {"coding": [_coding(PARTICIPATION, "RESP", "responsible party")]},
                "who": _ident(BSN_SYSTEM, r.acting_for),
                "requestor": False,
            }
        )
    return agents


def _entities(r: AuditRecord, shared: _Shared) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for pid in _unique(r.patient_ids):
        out.append(
            {
                "what": {"reference": f"Patient/{pid}"},
                "type": _coding(ENTITY_TYPE, "1", "Person"),
                "role": _coding(OBJECT_ROLE, "1", "Patient"),
            }
        )
    for ref in _unique(_ref(t, i, v) for t, i, v in r.resources):
        out.append(
            {
                "what": {"reference": ref},
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
            }
        )
    if r.method or r.query:
        out.append(shared.query_of(r))
    return out


def _query_entity(r: AuditRecord) -> dict[str, Any]:
    """The entity of the request itself: method and path, the query text (base64), the request id."""
    query: dict[str, Any] = {
        "type": _coding(ENTITY_TYPE, "2", "System Object"),
        "role": _coding(OBJECT_ROLE, "24", "Query"),
        "description": f"{r.method} {r.path}".strip(),
    }
    if r.query:
        query["query"] = base64.b64encode(r.query.encode("utf-8")).decode("ascii")
    if r.request_id:
        query["detail"] = [{"type": "request-id", "valueString": r.request_id}]
    return query


def _ref(res_type: str, res_id: str, version: str | None) -> str:
    return f"{res_type}/{res_id}/_history/{version}" if version else f"{res_type}/{res_id}"


def _who_value(agent: dict[str, Any]) -> str | None:
    ident = agent.get("who", {}).get("identifier")
    return ident.get("value") if ident else None


def index_facts(event: dict[str, Any], recorded_us: int) -> IndexFacts:
    """The search columns for an AuditEvent built by :func:`build_event` (used by verification)."""
    client = ura = user = None
    for agent in event.get("agent", ()):
        code = agent["type"]["coding"][0]["code"]
        if code == "110153":
            client = _who_value(agent)
        elif code == "PROV":
            ura = _who_value(agent)
        elif code in ("IRCP", "PAT"):
            user = _who_value(agent)
    patients: list[str] = []
    entities: list[str] = []
    for ent in event.get("entity", ()):
        ref = ent.get("what", {}).get("reference")
        if not ref:
            continue
        if ent["role"]["code"] == "1":
            patients.append(ref.removeprefix("Patient/"))
        else:
            entities.append(ref.split("/_history/", 1)[0])
    return IndexFacts(
        recorded_us=recorded_us,
        type_code=event["type"]["code"],
        interaction=event["subtype"][0]["code"],
        action=event["action"],
        outcome=event["outcome"],
        agent_client=client,
        agent_ura=ura,
        agent_user=user,
        patient_ids=tuple(patients),
        entities=tuple(dict.fromkeys(entities)),
    )


def prepare(record: AuditRecord, *, source: str = "zorgnet-hub") -> PreparedRecord:
    """Build, canonicalize and index one record (done by the caller's task, not the writer's)."""
    return _prepare(record, source, _Shared())


def prepare_many(records: Iterable[AuditRecord], *, source: str = "zorgnet-hub") -> list[PreparedRecord]:
    """:func:`prepare` for the records of one interaction, what they share built once."""
    shared = _Shared()
    return [_prepare(r, source, shared) for r in records]


def _prepare(record: AuditRecord, source: str, shared: _Shared) -> PreparedRecord:
    event = build_event(record, source=source, shared=shared)
    user = None
    if record.practitioner:
        user = record.practitioner[1]
    elif record.person_id:
        user = record.person_id
    elif record.principal_kind == "client":
        user = record.patient_bsn
    subtype0 = event["subtype"][0]["code"]
    facts = IndexFacts(
        recorded_us=record.recorded_us,
        type_code=event["type"]["code"],
        interaction=subtype0,
        action=event["action"],
        outcome=event["outcome"],
        agent_client=record.client_id or None,
        agent_ura=record.organisation_ura or None,
        agent_user=user or None,
        patient_ids=_unique(record.patient_ids),
        entities=_unique(f"{t}/{i}" for t, i, _v in record.resources),
    )
    return PreparedRecord(canonical_trusted(event), facts)


__all__ = [
    "INTERACTIONS",
    "AuditRecord",
    "IndexFacts",
    "PreparedRecord",
    "build_event",
    "index_facts",
    "outcome_code",
    "prepare",
    "prepare_many",
]
