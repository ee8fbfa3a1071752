"""The hub's subscription topics: which resource changes each covers, who may subscribe, which
filters it accepts. Plain data plus one matching function; served as SubscriptionTopic resources
(:func:`topic_resource`) and listed in the CapabilityStatement.

Topics are canonical URLs ``http://zorgnet.nl/fhir/SubscriptionTopic/{code}``. A Subscription names
one as ``Subscription.criteria`` (R4 Subscriptions Backport IG) and may narrow it with filter
criteria (``Task?patient=Patient/1&status=accepted``), checked against :data:`Topic.filters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BASE = "http://zorgnet.nl/fhir/SubscriptionTopic/"


@dataclass(frozen=True, slots=True)
class Topic:
    code: str
    title: str
    description: str
    #: Data categories (hub.fhir.categories) of the resources it covers.
    categories: frozenset[str]
    #: Resource types it covers (empty: any type of those categories).
    types: frozenset[str]
    #: Principal kinds that may subscribe (see hub.access.principal).
    kinds: frozenset[str]
    #: Filter parameters a subscription may use, with their description.
    filters: tuple[tuple[str, str], ...]
    #: Only resources that name the subscriber's organisation (Task owner or requester).
    own_organisation: bool = False

    @property
    def url(self) -> str:
        return BASE + self.code


_PATIENT = ("patient", "The client: Patient/{id}")
TOPICS: dict[str, Topic] = {
    t.code: t
    for t in (
        Topic(
            "overdracht",
            "Overdracht",
            "An overdracht Task where the subscribing organisation is owner or requester was created, changed "
            "state (or otherwise changed) or was deleted.",
            frozenset({"overdracht"}),
            frozenset({"Task"}),
            frozenset({"professional"}),
            (_PATIENT, ("status", "The Task's new status (e.g. requested, accepted, completed)")),
            own_organisation=True,
        ),
        Topic(
            "careplan",
            "Zorgplan",
            "A client's care plan or one of its activities (goals, tasks, service requests) changed.",
            frozenset({"zorgplan"}),
            frozenset(),
            frozenset({"professional", "client", "related"}),
            (_PATIENT, ("type", "The resource type (CarePlan, Goal, Task, ServiceRequest)")),
        ),
        Topic(
            "acp",
            "Advance care planning",
            "A client's ACP wishes (treatment directives, advance directives, goals, ACP conversations) changed.",
            frozenset({"acp"}),
            frozenset(),
            frozenset({"professional", "client", "related"}),
            (_PATIENT, ("type", "The resource type (Consent, Goal, Observation, Procedure, Encounter)")),
        ),
        Topic(
            "consent",
            "Toestemming",
            "A client's privacy consent or delegation (mantelzorger, representative) changed.",
            frozenset({"toestemming"}),
            frozenset({"Consent"}),
            frozenset({"client", "related", "admin"}),
            (_PATIENT,),
        ),
        Topic(
            "wmo",
            "Wmo-toewijzing",
            "A Wmo toewijzing (allocation of social support, a ServiceRequest) was created, changed or withdrawn.",
            frozenset({"wmo"}),
            frozenset({"ServiceRequest"}),
            frozenset({"professional"}),
            (_PATIENT, ("status", "The toewijzing's new status")),
        ),
    )
}

BY_URL: dict[str, Topic] = {t.url: t for t in TOPICS.values()}


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What the dispatcher knows of one event (a row of ``outbox_event``)."""

    res_type: str
    category: str
    change: str
    patients: frozenset[str]
    orgs: frozenset[str]
    new_status: str | None


def matches(topic: Topic, filters: list[tuple[str, str]], event: EventFacts, owner_ura: str | None) -> bool:
    """Whether ``event`` is one of ``topic``'s, for a subscription with these ``filters``.

    Access is not decided here: a matching event is delivered only if the subscriber may read the
    resource at delivery time (:mod:`hub.events.delivery` asks the access policy).
    """
    if event.category not in topic.categories:
        return False
    if topic.types and event.res_type not in topic.types:
        return False
    if topic.own_organisation and (not owner_ura or owner_ura not in event.orgs):
        return False
    for name, value in filters:
        if name == "patient" and value not in event.patients:
            return False
        if name == "status" and event.new_status != value:
            return False
        if name == "type" and event.res_type != value:
            return False
    return True


def topic_resource(topic: Topic, base: str) -> dict[str, Any]:
    """The topic as an R4B/R5 ``SubscriptionTopic`` resource."""
    types = sorted(topic.types) or ["Resource"]
    return {
        "resourceType": "SubscriptionTopic",
        "id": topic.code,
        "url": topic.url,
        "version": "1.0.0",
        "title": topic.title,
        "status": "active",
        "description": topic.description,
        "resourceTrigger": [
            {
                "description": topic.description,
                "resource": f"http://hl7.org/fhir/StructureDefinition/{t}",
                "supportedInteraction": ["create", "update", "delete"],
            }
            for t in types
        ],
        "canFilterBy": [{"description": text, "filterParameter": name} for name, text in topic.filters],
        "notificationShape": [{"resource": f"http://hl7.org/fhir/StructureDefinition/{t}"} for t in types],
        "extension": [
            {
                "url": "https://zorgnet-hub.nl/fhir/StructureDefinition/subscription-topic-category",
                "valueCode": c,
            }
            for c in sorted(topic.categories)
        ],
    }


TOPIC_CANONICAL_EXTENSION = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
)


def capability_subscription(entry: dict[str, Any], base: str) -> None:
    """What the CapabilityStatement says of Subscription: the interactions and operations the hub
    supports for it (hub.events.subscriptions) and every topic's canonical (Backport IG)."""
    entry["interaction"] = [{"code": c} for c in ("read", "update", "delete", "create", "search-type")]
    entry["extension"] = [{"url": TOPIC_CANONICAL_EXTENSION, "valueCanonical": t.url} for t in TOPICS.values()]
    entry["supportedProfile"] = [
        "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"
    ]
    entry["readHistory"] = False
    entry["conditionalCreate"] = False
    entry["conditionalUpdate"] = False
    entry["conditionalDelete"] = "not-supported"
    entry["searchParam"] = [
        {"name": "_id", "type": "token"},
        {"name": "status", "type": "token"},
        {"name": "criteria", "type": "uri"},
    ]
    backport = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
    entry["operation"] = [
        {"name": "status", "definition": backport + "backport-subscription-status"},
        {"name": "events", "definition": backport + "backport-subscription-events"},
        {"name": "get-ws-binding-token", "definition": backport + "backport-subscription-get-ws-binding-token"},
    ]
