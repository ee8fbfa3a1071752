"""What each PGO page shows, read from the hub and turned into plain view models.

Every function takes the caller's :class:`HubClient`, so the hub decides what this person may see;
a mantelzorger gets only the categories the client delegated (empty lists elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from apps.common import fhirtext as ft
from apps.common.hubclient import HubClient, HubError

HUB = "https://zorgnet-hub.nl/fhir"
PERFORMER_KIND_EXT = f"{HUB}/StructureDefinition/ext-ActivityPerformerKind"
CARE_ACTIVITY = f"{HUB}/CodeSystem/care-activity"
GOAL_CATEGORY = f"{HUB}/CodeSystem/goal-category"
SNOMED = "http://snomed.info/sct"

ACTIVITY_LABELS: dict[str, str] = {
    "persoonlijke-verzorging": "Persoonlijke verzorging",
    "verpleging": "Verpleging",
    "huishoudelijke-hulp": "Huishoudelijke hulp",
    "begeleiding": "Begeleiding",
    "dagbesteding": "Dagbesteding",
    "maaltijden": "Boodschappen en maaltijden",
    "vervoer": "Vervoer",
    "gezelschap": "Gezelschap en samen dingen doen",
    "mantelzorgondersteuning": "Steun voor de mantelzorger",
    "respijtzorg": "Respijtzorg (even vrij voor de mantelzorger)",
    "logeeropvang": "Logeeropvang",
    "medicatie": "Hulp bij medicijnen",
    "toezicht": "Toezicht",
}
ACTIVITY_STATUS: dict[str, str] = {
    "not-started": "Nog niet begonnen",
    "scheduled": "Gepland",
    "in-progress": "Bezig",
    "on-hold": "Gepauzeerd",
    "completed": "Klaar",
    "cancelled": "Geannuleerd",
    "stopped": "Gestopt",
    "unknown": "Onbekend",
    "entered-in-error": "Vergissing",
}
#: Statuses a mantelzorger can choose for their own activity.
OWN_STATUSES = ("scheduled", "in-progress", "on-hold", "completed", "cancelled")
#: The client's say over another party's activity (the hub's rule ``careplan-client-status``): pause,
#: stop or cancel it, with a reason; the button text for each.
CLIENT_STATUSES: dict[str, str] = {"on-hold": "Pauzeren", "stopped": "Stoppen", "cancelled": "Annuleren"}
#: After these nobody but the performer changes the activity: no buttons for the client.
FINAL_STATUSES = frozenset({"completed", "cancelled", "stopped", "entered-in-error"})
#: What the client's say did, for the message afterwards.
CLIENT_DONE: dict[str, str] = {"on-hold": "gepauzeerd", "stopped": "gestopt", "cancelled": "geannuleerd"}
TASK_STATUS: dict[str, str] = {
    "draft": "In voorbereiding",
    "requested": "Aangevraagd",
    "received": "Ontvangen",
    "accepted": "Geaccepteerd",
    "rejected": "Afgewezen",
    "ready": "Klaar om te beginnen",
    "cancelled": "Geannuleerd",
    "in-progress": "Bezig",
    "on-hold": "Gepauzeerd",
    "failed": "Mislukt",
    "completed": "Afgerond",
    "entered-in-error": "Vergissing",
}
ROLE_LABELS: dict[str, str] = {"PAT": "Cliënt"}
#: Observations that hold an ACP wish (IKNL profiles, by SNOMED code).
ACP_OBSERVATIONS: dict[str, str] = {
    "395091006": "Waar ik wil overlijden",
    "153851000146100": "Mijn wensen voor de zorg",
    "340171000146104": "Mijn standpunt over euthanasie",
    "570801000146104": "Orgaandonatie",
    "247751003": "Ook belangrijk om te weten",
}
GROUPS = (("professional", "Zorgverleners"), ("mantelzorger", "Mantelzorgers en vrijwilligers"), ("client", "Ikzelf"))
_GROUP_OF = {
    "professional": "professional",
    "organisatie": "professional",
    "mantelzorger": "mantelzorger",
    "vrijwilliger": "mantelzorger",
    "client": "client",
}


# --- who is who -----------------------------------------------------------------------------------


class Names:
    """Names of the resources a search brought along (``_include``), by ``Type/id``."""

    def __init__(self, resources: Iterable[dict[str, Any]]) -> None:
        self.by_key = {f"{r['resourceType']}/{r['id']}": r for r in resources if r.get("id")}
        self.by_ura = {
            ura: r
            for r in self.by_key.values()
            if r["resourceType"] == "Organization" and (ura := ft.identifier(r, ft.URA))
        }

    def get(self, ref: Any) -> dict[str, Any] | None:
        key = ft.ref_key(ref)
        if key:
            return self.by_key.get(key)
        ident = (ref or {}).get("identifier") if isinstance(ref, dict) else None
        if isinstance(ident, dict) and ident.get("system") == ft.URA:
            return self.by_ura.get(str(ident.get("value")))
        return None

    async def add_organisations(self, hub: HubClient, refs: Iterable[Any]) -> None:
        """Look up organisations referenced by URA identifier only (no literal reference to include)."""
        uras = {
            str(ident["value"])
            for ref in refs
            if isinstance(ref, dict)
            for ident in [ref.get("identifier")]
            if isinstance(ident, dict) and ident.get("system") == ft.URA and ident.get("value")
        } - set(self.by_ura)
        if not uras:
            return
        wanted = ",".join(f"{ft.URA}|{u}" for u in sorted(uras))
        for org in await hub.search_all("Organization", [("identifier", wanted)]):
            self.by_ura[ft.identifier(org, ft.URA) or ""] = org

    def describe(self, ref: Any) -> tuple[str, str]:
        """(name, organisation or relation) for a reference to a person, role or organisation."""
        res = self.get(ref)
        if res is None:
            display = (ref or {}).get("display") if isinstance(ref, dict) else None
            return (str(display) if display else "Onbekend", "")
        kind = res["resourceType"]
        if kind == "PractitionerRole":
            practitioner = self.get(res.get("practitioner"))
            org = self.get(res.get("organization"))
            role = ft.concept_text((res.get("code") or [{}])[0])
            return (ft.human_name(practitioner) or role or "Zorgverlener", str((org or {}).get("name", "")))
        if kind == "Organization":
            return (str(res.get("name", "Organisatie")), "")
        if kind == "RelatedPerson":
            return (ft.human_name(res), ft.concept_text((res.get("relationship") or [{}])[0]))
        return (ft.human_name(res) or kind, "")


@dataclass
class Member:
    name: str
    role: str
    organisation: str
    kind: str  # "client" | "naaste" | "professional"
    phone: str = ""


async def network(hub: HubClient, patient: str) -> list[Member]:
    """The care team(s) around the client: names and roles, never URA/UZI numbers."""
    found = await hub.search_all(
        "CareTeam",
        [
            ("subject", f"Patient/{patient}"),
            ("status", "active"),
            ("_include", "CareTeam:participant"),
            ("_include:iterate", "PractitionerRole:practitioner"),
            ("_include:iterate", "PractitionerRole:organization"),
        ],
    )
    names = Names(found)
    members: list[Member] = []
    seen: set[str] = set()
    for team in (r for r in found if r["resourceType"] == "CareTeam"):
        for part in team.get("participant") or []:
            member = part.get("member")
            key = ft.ref_key(member) or ""
            if key in seen:
                continue
            seen.add(key)
            role = ft.concept_text((part.get("role") or [{}])[0])
            name, where = names.describe(member)
            kind = {"Patient": "client", "RelatedPerson": "naaste"}.get(key.split("/")[0], "professional")
            if not where and part.get("onBehalfOf"):
                where = names.describe(part["onBehalfOf"])[0]
            phone = ""
            res = names.get(member)
            for telecom in (res or {}).get("telecom") or []:
                if telecom.get("system") == "phone":
                    phone = str(telecom.get("value", ""))
            if kind == "naaste" and where == role:
                where = ""
            members.append(Member(name, role or ("Cliënt" if kind == "client" else ""), where, kind, phone))
    order = {"client": 0, "naaste": 1, "professional": 2}
    members.sort(key=lambda m: order[m.kind])
    return members


# --- care plan ------------------------------------------------------------------------------------


@dataclass
class GoalView:
    id: str
    text: str
    status: str
    own: bool
    by: str


@dataclass
class ActivityView:
    index: int
    plan_id: str
    label: str
    description: str
    status: str
    status_code: str
    who: str
    group: str
    mine: bool
    reason: str = ""
    #: the client's say over another party's activity: (status, button text) they may choose now
    say: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """Unique on the page: ids of the activity's form fields."""
        return f"{self.plan_id}-{self.index}"


@dataclass
class PlanView:
    id: str
    title: str
    goals: list[GoalView] = field(default_factory=list)
    groups: list[tuple[str, str, list[ActivityView]]] = field(default_factory=list)


def activity_group(detail: dict[str, Any]) -> str:
    for ext in detail.get("extension") or []:
        if ext.get("url") == PERFORMER_KIND_EXT:
            return _GROUP_OF.get(str(ext.get("valueCode")), "professional")
    return "professional"


def performer_person(detail: dict[str, Any]) -> str | None:
    for performer in detail.get("performer") or []:
        ident = performer.get("identifier") or {}
        if ident.get("system") == ft.PERSON and ident.get("value"):
            return str(ident["value"])
    return None


async def care_plans(hub: HubClient, patient: str, *, me: Me) -> list[PlanView]:
    found = await hub.search_all(
        "CarePlan",
        [
            ("subject", f"Patient/{patient}"),
            ("status", "active"),
            ("_include", "CarePlan:goal"),
            ("_include", "CarePlan:performer"),
            ("_include:iterate", "PractitionerRole:practitioner"),
            ("_include:iterate", "PractitionerRole:organization"),
        ],
    )
    names = Names(found)
    plans: list[PlanView] = []
    for plan in (r for r in found if r["resourceType"] == "CarePlan"):
        view = PlanView(plan["id"], str(plan.get("title") or "Zorgplan"))
        for ref in plan.get("goal") or []:
            goal = names.get(ref)
            if goal is None:
                continue
            own = (
                ft.code_of(goal.get("category") or [], GOAL_CATEGORY) == "eigen-doel"
                and ft.ref_id(goal.get("expressedBy"), "Patient") == patient
            )
            by = "Mijn eigen doel" if own else "Doel van het zorgteam"
            view.goals.append(
                GoalView(
                    goal["id"], ft.concept_text(goal.get("description")), str(goal.get("lifecycleStatus", "")), own, by
                )
            )
        grouped: dict[str, list[ActivityView]] = {key: [] for key, _ in GROUPS}
        for index, activity in enumerate(plan.get("activity") or []):
            detail = activity.get("detail") or {}
            group = activity_group(detail)
            performers = detail.get("performer") or []
            who = ", ".join(_who(names, p) for p in performers) or (
                "Een organisatie" if group == "professional" else ""
            )
            person = performer_person(detail)
            status = str(detail.get("status", "unknown"))
            grouped[group].append(
                ActivityView(
                    index,
                    plan["id"],
                    activity_label(activity),
                    str(detail.get("description", "")),
                    ACTIVITY_STATUS.get(status, status),
                    status,
                    who,
                    group,
                    bool(me.person and person == me.person),
                    ft.concept_text(detail.get("statusReason")),
                    client_choices(activity, me, patient),
                )
            )
        view.groups = [(key, label, grouped[key]) for key, label in GROUPS]
        plans.append(view)
    return plans


def activity_label(activity: dict[str, Any]) -> str:
    detail = activity.get("detail") or {}
    code = ft.code_of(detail.get("code"), CARE_ACTIVITY) or ""
    return ACTIVITY_LABELS.get(code, ft.concept_text(detail.get("code")) or "Activiteit")


def _who(names: Names, ref: dict[str, Any]) -> str:
    name, where = names.describe(ref)
    return f"{name} ({where})" if where else name


@dataclass(frozen=True)
class Me:
    """Who is logged in: the client themself, or a person acting for them."""

    kind: str  # "client" | "related"
    person: str | None
    name: str


def new_activity(code: str, description: str, status: str, me: Me, patient: str) -> dict[str, Any]:
    """A care plan activity done by the logged-in person (a mantelzorger, or the client)."""
    if code not in ACTIVITY_LABELS or status not in OWN_STATUSES:
        raise ValueError("onbekende activiteit of status")
    if me.kind == "related":
        kind = "mantelzorger"
        performer: dict[str, Any] = {"identifier": {"system": ft.PERSON, "value": me.person}, "display": me.name}
    else:
        kind, performer = "client", {"reference": f"Patient/{patient}"}
    return {
        "detail": {
            "extension": [{"url": PERFORMER_KIND_EXT, "valueCode": kind}],
            "code": {"coding": [{"system": CARE_ACTIVITY, "code": code}]},
            "status": status,
            "description": description,
            "performer": [performer],
        }
    }


def may_change(activity: dict[str, Any], me: Me, patient: str) -> bool:
    """A mantelzorger changes only their own activities; the client only those they do themself."""
    detail = activity.get("detail") or {}
    if me.kind == "related":
        return bool(me.person) and performer_person(detail) == me.person
    return activity_group(detail) == "client" and any(
        ft.ref_id(p, "Patient") == patient for p in detail.get("performer") or []
    )


def client_choices(activity: dict[str, Any], me: Me, patient: str) -> tuple[tuple[str, str], ...]:
    """What the client may do to another party's activity: pause it (unless it is paused), stop it
    once it started, cancel it before; nothing once it is final, nothing for a mantelzorger.

    The app supports no legal-representative login (every related person is a mantelzorger here),
    so only the client gets this say; the hub decides either way (rule ``careplan-client-status``).
    """
    if me.kind != "client" or may_change(activity, me, patient):
        return ()
    status = str((activity.get("detail") or {}).get("status", "unknown"))
    if status in FINAL_STATUSES:
        return ()
    started = status in ("in-progress", "on-hold")
    wanted = [
        s
        for s in CLIENT_STATUSES
        if not (s == "on-hold" and status == "on-hold")
        and not (s == "stopped" and not started)
        and not (s == "cancelled" and started)
    ]
    return tuple((s, CLIENT_STATUSES[s]) for s in wanted)


def with_client_status(activity: dict[str, Any], status: str, reason: str) -> dict[str, Any]:
    """The activity with the client's status and reason (``detail.statusReason``), nothing else changed."""
    if status not in CLIENT_STATUSES or not reason.strip():
        raise ValueError("onbekende status of geen reden")
    detail = dict(activity.get("detail") or {})
    detail["status"] = status
    detail["statusReason"] = {"text": reason.strip()}
    return {**activity, "detail": detail}


# --- wishes (ACP) ---------------------------------------------------------------------------------


@dataclass
class WishVersion:
    text: str
    date: str
    version: str


@dataclass
class Wish:
    title: str
    current: WishVersion
    earlier: list[WishVersion]


def _treatment_text(consent: dict[str, Any]) -> tuple[str, str]:
    provision = consent.get("provision") or {}
    what = ", ".join(ft.concept_text(c) for c in provision.get("code") or []) or "Behandeling"
    verdict = {"deny": "Ik wil dit niet", "permit": "Ik wil dit wel"}.get(str(provision.get("type")), "")
    return what, verdict


def _wish_versions(history: list[dict[str, Any]], describe: Any) -> list[WishVersion]:
    out = []
    for res in history:
        meta = res.get("meta") or {}
        out.append(WishVersion(describe(res), ft.dutch_date(meta.get("lastUpdated")), str(meta.get("versionId", ""))))
    return out


async def wishes(hub: HubClient, patient: str) -> list[Wish]:
    """ACP wishes: treatment directives (Consent) and wish observations; each with its earlier versions."""
    out: list[Wish] = []
    consents = await hub.search_all("Consent", [("patient", f"Patient/{patient}"), ("_count", "50")])
    for consent in consents:
        scope = ft.code_of(consent.get("scope"))
        if scope not in ("treatment", "adr") or consent.get("status") == "entered-in-error":
            continue
        title, _ = _treatment_text(consent)

        def describe(res: dict[str, Any]) -> str:
            what, verdict = _treatment_text(res)
            state = "" if res.get("status") == "active" else " (niet meer geldig)"
            return f"{verdict}: {what.lower()}{state}" if verdict else what + state

        out.append(await _with_history(hub, "Consent", consent, f"Behandelwens: {title}", describe))
    observations = await hub.search_all(
        "Observation",
        [
            ("subject", f"Patient/{patient}"),
            ("code", ",".join(f"{SNOMED}|{c}" for c in ACP_OBSERVATIONS)),
        ],
    )
    for obs in observations:
        code = ft.code_of(obs.get("code"), SNOMED) or ""

        def describe_obs(res: dict[str, Any]) -> str:
            value = res.get("valueCodeableConcept")
            if value:
                return ft.concept_text(value)
            return str(res.get("valueString") or res.get("valueBoolean") or "")

        out.append(await _with_history(hub, "Observation", obs, ACP_OBSERVATIONS.get(code, "Wens"), describe_obs))
    return out


async def _with_history(hub: HubClient, res_type: str, res: dict[str, Any], title: str, describe: Any) -> Wish:
    try:
        history = await hub.history(res_type, res["id"])
    except HubError:
        history = [res]
    versions = _wish_versions(history or [res], describe)
    versions.sort(key=lambda v: int(v.version) if v.version.isdigit() else 0, reverse=True)
    return Wish(title, versions[0], versions[1:])


# --- overdracht -----------------------------------------------------------------------------------


@dataclass
class Handover:
    description: str
    status: str
    status_code: str
    sender: str
    receiver: str
    since: str
    done: bool


async def handovers(hub: HubClient, patient: str) -> list[Handover]:
    found = await hub.search_all(
        "Task",
        [
            ("patient", f"Patient/{patient}"),
            ("_include", "Task:requester"),
            ("_include", "Task:owner"),
            ("_sort", "-_lastUpdated"),
        ],
    )
    names = Names(found)
    tasks = [r for r in found if r["resourceType"] == "Task"]
    await names.add_organisations(hub, [t.get(k) for t in tasks for k in ("requester", "owner")])
    out = []
    for task in tasks:
        status = str(task.get("status", ""))
        out.append(
            Handover(
                str(task.get("description") or ft.concept_text(task.get("code")) or "Overdracht"),
                TASK_STATUS.get(status, status),
                status,
                names.describe(task.get("requester"))[0] if task.get("requester") else "",
                names.describe(task.get("owner"))[0] if task.get("owner") else "",
                ft.dutch_date(task.get("authoredOn") or (task.get("meta") or {}).get("lastUpdated"), with_time=True),
                status in ("completed", "cancelled", "rejected", "failed", "entered-in-error"),
            )
        )
    out.sort(key=lambda h: h.done)
    return out
