"""What an eOverdracht Task means for access: which Tasks are overdrachten, which of them yield access
facts at all (not one with a counterpart outside the hub), and from which state the receiver is in the
client's care. The Task's state machine (who takes which step) is :mod:`hub.workflows.overdracht`,
which builds on these."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

SNOMED = "http://snomed.info/sct"
OVERDRACHT_CODE = (SNOMED, "308292007")
#: The tag of an overdracht whose counterpart is outside the hub, and which side that is.
EXCHANGE_SYSTEM = "https://zorgnet-hub.nl/fhir/CodeSystem/overdracht-exchange"
#: States in which the receiver takes part in the client's care (a care relation).
CARE_STATES = frozenset({"completed"})


def codes(concept: Any) -> Iterator[tuple[Any, Any]]:
    """(system, code) of every coding of a CodeableConcept (or a list of them)."""
    concepts = concept if isinstance(concept, list) else [concept]
    for c in concepts:
        if isinstance(c, dict):
            for coding in c.get("coding") or []:
                if isinstance(coding, dict):
                    yield coding.get("system"), coding.get("code")


def is_overdracht(resource: dict[str, Any] | None) -> bool:
    return (
        isinstance(resource, dict)
        and resource.get("resourceType") == "Task"
        and OVERDRACHT_CODE in set(codes(resource.get("code")))
    )


def exchange(task: dict[str, Any] | None) -> str | None:
    """``imported``/``exported`` (or another code of :data:`EXCHANGE_SYSTEM`, refused on write) when
    the overdracht's counterpart is outside the hub; None for an overdracht between hub parties."""
    meta = task.get("meta") if isinstance(task, dict) else None
    for tag in (meta.get("tag") or []) if isinstance(meta, dict) else []:
        if isinstance(tag, dict) and tag.get("system") == EXCHANGE_SYSTEM:
            return str(tag.get("code"))
    return None


def yields_access(task: dict[str, Any] | None) -> bool:
    """Whether this overdracht makes access facts (what its receiver reads, a care relation): not when
    its counterpart is outside the hub."""
    return is_overdracht(task) and exchange(task) is None
