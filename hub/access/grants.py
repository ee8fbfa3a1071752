"""The consent semantics, as a pure function, and the ``access_grant`` rows it produces.

Rules (the domain's consent semantics, README "Access"):

- An organisation reads a client's data of a category only while it has an active care
  relationship with the client, and the client's consent allows it.
- A rule names a decision (permit/deny) and, optionally, a category, an organisation (URA) or an
  organisation type, and a purpose of use. A more specific rule beats a more general one; at
  equal specificity an objection (deny) beats a permission.
- Without an applicable rule, categories that need an explicit opt-in (:data:`OPT_IN`) are closed
  and all others are open.

:func:`explain` is the single definition of that (:func:`decide` is its decision);
:func:`grant_intervals` turns a patient's relations and rules (each valid during [start, end)) into
the intervals during which each organisation may read each category — the rows of ``access_grant``
that every search joins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hub.store.tables import DATE_MAX

#: Every data category of the hub (CodeSystem https://zorgnet-hub.nl/fhir/CodeSystem/data-category).
CATEGORIES: tuple[str, ...] = (
    "acp",
    "agenda",
    "audit",
    "documenten",
    "medisch",
    "netwerk",
    "overdracht",
    "registratie",
    "toestemming",
    "wmo",
    "zorgplan",
)
#: Categories a professional sees only when the client opted in (Mitz-like: medical data).
OPT_IN: frozenset[str] = frozenset({"medisch"})
#: Reference data (organisations, professionals, definitions): readable by every authenticated caller.
PUBLIC: frozenset[str] = frozenset({"registratie"})
#: Categories that a care relationship never opens to professionals (the client's own business).
NEVER_FOR_PROFESSIONALS: frozenset[str] = frozenset({"audit"})


@dataclass(frozen=True, slots=True)
class Rule:
    decision: str  # "permit" | "deny"
    category: str | None = None
    actor_ura: str | None = None
    org_type: str | None = None
    purpose: str | None = None
    start: int = 0
    end: int = DATE_MAX

    def applies(self, category: str, ura: str, org_types: frozenset[str], purpose: str) -> bool:
        return (
            (self.category is None or self.category == category)
            and (self.actor_ura is None or self.actor_ura == ura)
            and (self.org_type is None or self.org_type in org_types)
            and (self.purpose is None or self.purpose == purpose)
        )

    @property
    def specificity(self) -> int:
        actor = 2 if self.actor_ura else 1 if self.org_type else 0
        return actor + (1 if self.category else 0)


@dataclass(frozen=True, slots=True)
class Relation:
    org_ura: str
    start: int
    end: int


def decide(category: str, ura: str, org_types: frozenset[str], rules: Iterable[Rule], purpose: str = "TREAT") -> str:
    """'permit', 'deny' (an explicit objection) or 'closed' (no rule, and the category needs opt-in):
    :func:`explain`'s decision, without the rules that made it.

    ``rules`` are those in force at the moment in question; the care relationship is checked by
    the caller.
    """
    return explain(category, ura, org_types, rules, purpose)[0]


def grant_intervals(
    relations: Iterable[Relation],
    rules: Iterable[Rule],
    org_types: Mapping[str, frozenset[str]],
    categories: Iterable[str] = CATEGORIES,
) -> list[tuple[str, str, int, int]]:
    """(org_ura, category, start, end) for every interval in which the organisation may read."""
    rules = list(rules)
    by_org: dict[str, list[Relation]] = {}
    for rel in relations:
        if rel.end > rel.start:
            by_org.setdefault(rel.org_ura, []).append(rel)
    out: list[tuple[str, str, int, int]] = []
    for ura, rels in sorted(by_org.items()):
        types = org_types.get(ura, frozenset())
        relevant = [r for r in rules if r.actor_ura in (None, ura) and (r.org_type is None or r.org_type in types)]
        cuts = sorted(
            {p for rel in rels for p in (rel.start, rel.end)} | {p for r in relevant for p in (r.start, r.end)}
        )
        for category in categories:
            if category in PUBLIC:
                continue
            current: list[int] | None = None
            for lo, hi in zip(cuts, cuts[1:], strict=False):
                related = any(rel.start <= lo and hi <= rel.end for rel in rels)
                in_force = [r for r in relevant if r.start <= lo and hi <= r.end]
                ok = related and decide(category, ura, types, in_force) == "permit"
                if ok and current is not None and current[1] == lo:
                    current[1] = hi
                elif ok:
                    if current is not None:
                        out.append((ura, category, current[0], current[1]))
                    current = [lo, hi]
            if current is not None:
                out.append((ura, category, current[0], current[1]))
    return out


def explain(
    category: str, ura: str, org_types: frozenset[str], rules: Iterable[Rule], purpose: str = "TREAT"
) -> tuple[str, list[Rule]]:
    """The consent rule, the one implementation of it: the decision ('permit', 'deny' or 'closed') and
    the rules that decided (empty when the default decided). :func:`decide` is its first half; the SQL
    form in :meth:`hub.access.policy.AccessPolicy._emergency` is checked against it by the access model
    tests (tests/api/test_access_model.py)."""
    if category in NEVER_FOR_PROFESSIONALS:
        return "closed", []
    applicable = [r for r in rules if r.applies(category, ura, org_types, purpose)]
    if not applicable:
        return ("closed" if category in OPT_IN else "permit"), []
    best = max(r.specificity for r in applicable)
    top = [r for r in applicable if r.specificity == best]
    if any(r.decision == "deny" for r in top):
        return "deny", [r for r in top if r.decision == "deny"]
    return "permit", top
