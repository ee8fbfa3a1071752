"""Which resource a reference names: the one place that decides whether a reference is *local*.

Access decisions (the write check, the Patient compartments of a write, the care relations and
consent rules derived from it) trust a reference only when it names a resource on this hub:

- relative ``Type/id`` (optionally ``/_history/n``);
- absolute with the hub's own FHIR base: ``{base}/Type/id``;
- conditional (``Type?criteria``) and ``urn:uuid:`` references inside a transaction Bundle, which
  the transaction rewrites to ``Type/id`` before anything is written.

Everything else is *external* and never names a local resource: another server's URL (even when
its tail looks like ``Patient/<local id>``), extra path segments (``foo/Patient/x``), an
unresolved ``urn:``/conditional reference, a contained ``#x``, a canonical ``url|version``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.fhir.ids import ID_PATTERN
from hub.fhir.typeinfo import is_resource_type


@dataclass(frozen=True, slots=True)
class Target:
    """A reference resolved: ``local`` (type + id on this hub) or external (``url`` kept as given)."""

    res_type: str | None
    res_id: str | None
    url: str | None = None

    @property
    def local(self) -> bool:
        return self.res_id is not None


EXTERNAL = Target(None, None)


def _relative(path: str) -> tuple[str, str] | None:
    parts = path.split("/")
    if len(parts) == 4 and parts[2] == "_history" and parts[3].isascii() and parts[3].isdigit():
        parts = parts[:2]
    if len(parts) != 2:
        return None
    res_type, res_id = parts
    if not is_resource_type(res_type) or not ID_PATTERN.match(res_id):
        return None
    return res_type, res_id


def resolve(reference: Any, base: str | None) -> Target:
    """The target of a Reference (a dict with ``reference``) or a reference string."""
    ref = reference.get("reference") if isinstance(reference, dict) else reference
    if not isinstance(ref, str) or not ref:
        return EXTERNAL
    if "://" not in ref and not ref.startswith(("urn:", "#")) and "?" not in ref:
        found = _relative(ref)
        return Target(*found) if found else Target(None, None, ref)
    if base:
        prefix = base.rstrip("/") + "/"
        if ref.startswith(prefix) and "?" not in ref and "#" not in ref:
            found = _relative(ref[len(prefix) :])
            if found:
                return Target(*found)
    return Target(None, None, ref)


def local_id(reference: Any, res_type: str, base: str | None) -> str | None:
    """The id of the local ``res_type`` a reference names, or None (external, other type, malformed)."""
    target = resolve(reference, base)
    return target.res_id if target.res_type == res_type else None


def is_local_url(url: str, base: str | None) -> bool:
    """An absolute reference that names a resource on this hub."""
    return resolve(url, base).local


__all__ = ["EXTERNAL", "Target", "is_local_url", "local_id", "resolve"]
